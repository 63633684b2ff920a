/**
 * A contrail cluster for tests: real nats-server processes (nats-cluster.ts), `contrail serve
 * --nats …` processes reading one FakeRelay fed by a seeded synthetic firehose, started past the
 * cluster's first batch (so a test's frames cannot fall in the start-of-cluster gap), and the
 * checks every cluster test ends with — every node holds exactly the upstream's ops, once each,
 * in order, with the same time_us and seq on every node — and a reader of the cluster's stream.
 * With `natsProxies`, each node reaches NATS through proxies of its own (holding-proxy.ts), so a
 * test can cut one node off NATS while it runs on.
 */
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { decodeStreamRecord, type StreamRecord } from '../../src/cluster/stream-record.ts';
import { runSteps, settleAll } from './cleanup.ts';
import { FakeRelay } from './fake-relay.ts';
import { tempDir } from './gateway.ts';
import { HoldingProxy } from './holding-proxy.ts';
import { NatsCluster, readStreamRecords } from './nats-cluster.ts';
import { assertSameOps, eventOpId, upstreamOpIds } from './op-ids.ts';
import { ContrailProcess, type LogRecord } from './contrail-process.ts';
import { stats, Subscription, waitUntil } from './subscribe-client.ts';
import { SyntheticFirehose } from './synthetic.ts';

export interface ClusterMember {
  id: string;
  dataDir: string;
  process: ContrailProcess;
  /** The proxies it reaches the NATS servers through (one each), with `natsProxies`; none otherwise. */
  natsProxies: HoldingProxy[];
}

/** A relay fed from one synthetic stream, so revs keep increasing across every push. */
export class Feed {
  readonly #firehose = new SyntheticFirehose({ seed: 7, accounts: 300 });
  lastSeq = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly relay: FakeRelay) {}

  push(count: number): void {
    for (const frame of this.#firehose.frames(count)) {
      this.relay.push({ seq: frame.seq, bytes: frame.bytes });
      this.lastSeq = frame.seq;
    }
  }

  /** Keeps pushing `perTick` frames every 20 ms until stopped. */
  flow(perTick: number): void {
    this.#timer = setInterval(() => this.push(perTick), 20);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

export interface ContrailClusterOptions {
  natsServers: number;
  /** nats-server's max_payload (e.g. '64KB'); NATS's default (1MB) when unset. */
  maxPayload?: string;
  nodeIds: string[];
  leaseMs: number;
  /** Each node connects to each NATS server through a HoldingProxy of its own. */
  natsProxies?: boolean;
  /** The nodes' --log-level (info when unset). */
  logLevel?: string;
  /** More flags every node is started with (e.g. --verify and its directory). */
  args?: string[];
  /** Environment variables a node is started with, by its id (e.g. a wall clock set behind: clock-behind.ts). */
  env?: Record<string, Record<string, string>>;
}

export class ContrailCluster {
  readonly members: ClusterMember[] = [];
  readonly #dirs: Array<{ remove(): void }> = [];
  /** What NATS last answered a lease read that failed (leaseHolder); cleared by one that succeeds. */
  #lastLeaseReadError: string | undefined;
  /** The newest upstream seq start() pushed to bring the stream its first batch (warmUp). */
  #warmUpSeq = 0;

  private constructor(
    readonly nats: NatsCluster,
    readonly relay: FakeRelay,
    readonly feed: Feed,
    readonly observer: NatsConnection,
    readonly options: ContrailClusterOptions,
  ) {}

  /**
   * Starts NATS, the relay and every node, and resolves once the stream holds a first batch with
   * its relay cursor and every node holds that batch (warmUp).
   */
  static async start(options: ContrailClusterOptions): Promise<ContrailCluster> {
    const nats = await NatsCluster.start(options.natsServers, { maxPayload: options.maxPayload });
    let relay: FakeRelay | undefined;
    let cluster: ContrailCluster | undefined;
    try {
      relay = await FakeRelay.start();
      const observer = await connect({ servers: nats.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      cluster = new ContrailCluster(nats, relay, new Feed(relay), observer, options);
      for (const id of options.nodeIds) {
        const dir = tempDir(`contrail-node-${id}-`);
        cluster.#dirs.push(dir);
        const proxies = options.natsProxies ? await Promise.all(nats.servers.map((server) => HoldingProxy.start(server.port))) : [];
        cluster.members.push(cluster.#launch(id, dir.path, proxies));
      }
      for (const member of cluster.members) await member.process.waitServing();
      // A new buffer starts live: the leader must be reading the relay before frames are pushed.
      await relay.waitForConnections(1, 60_000);
      await cluster.#warmUp();
      return cluster;
    } catch (err) {
      // A test registers the cluster's stop once start returns: what a failed start began, left
      // running, would keep the test's process alive after it reported the failure.
      await (cluster ? cluster.stop() : runSteps([() => relay?.stop(), () => nats.stop()])).catch(() => {});
      throw err;
    }
  }

  /**
   * Pushes a frame now and then until the stream holds a batch with a relay cursor, then waits for
   * every node to hold it. A brand-new cluster's first leader that loses its lease before its first
   * batch reaches the stream leaves the next no cursor to resume from: it reads the relay live, and
   * what the first read is lost (README Cluster mode). Past this point a new leader resumes from the
   * stream's cursor, so what a test pushes is never lost that way. The frames lost here, if any,
   * are the first warm-up frames, which assertConsistent leaves out.
   */
  async #warmUp(): Promise<void> {
    let pushedAt = 0;
    await waitUntil(
      async () => {
        const last = await this.lastStreamRecord();
        if (last?.record.type === 'batch' && last.record.batch.cursor !== undefined) return true;
        // One frame a quarter second: a later one reaches a leader that took over and reads live.
        if (Date.now() - pushedAt >= 250) {
          this.feed.push(1);
          pushedAt = Date.now();
        }
        return false;
      },
      'the cluster stream to hold a first batch with its relay cursor',
      90_000,
    );
    this.#warmUpSeq = this.feed.lastSeq;
    for (const member of this.members) await this.settled(member);
  }

  #launch(id: string, dataDir: string, natsProxies: HoldingProxy[]): ClusterMember {
    const natsUrls = natsProxies.length > 0 ? natsProxies.map((proxy) => proxy.natsUrl) : this.nats.urls;
    const process = ContrailProcess.serve([
      '--upstream', this.relay.url, '--data-dir', dataDir, '--nats', natsUrls.join(','),
      '--nats-replicas', String(this.options.natsServers), '--nats-lease', `${this.options.leaseMs}ms`, '--node-id', id,
      ...(this.options.args ?? []),
    ], { logLevel: this.options.logLevel, env: this.options.env?.[id] });
    return { id, dataDir, process, natsProxies };
  }

  /** Starts a member again (after a kill) on its own data dir, and resolves once it serves. */
  async restart(member: ClusterMember): Promise<ClusterMember> {
    const restarted = this.#launch(member.id, member.dataDir, member.natsProxies);
    this.members[this.members.indexOf(member)] = restarted;
    await restarted.process.waitServing();
    return restarted;
  }

  /**
   * The member holding the ingest lease, read from NATS (the authority), once one holds it. A
   * timeout names the last error NATS gave a lease read, if the reads did not all succeed: a
   * NATS unreachable or a bucket gone is not the same failure as no node leading.
   */
  async leader(timeoutMs = 30_000): Promise<ClusterMember> {
    let holder: ClusterMember | undefined;
    this.#lastLeaseReadError = undefined;
    try {
      await waitUntil(async () => (holder = await this.leaseHolder()) !== undefined, 'a node to hold the ingest lease', timeoutMs);
    } catch (err) {
      const nats = this.#lastLeaseReadError;
      throw nats === undefined ? err : new Error(`${(err as Error).message} (last NATS error: ${nats})`);
    }
    return holder!;
  }

  /** The member holding the ingest lease now, read from NATS, if one does; none when NATS cannot answer (so leader() polls on through a NATS error). */
  async leaseHolder(): Promise<ClusterMember | undefined> {
    const kv = await new Kvm(jetstream(this.observer)).open('contrail-leader');
    const entry = await kv.get('leader').then(
      (read) => {
        this.#lastLeaseReadError = undefined;
        return read;
      },
      (err: Error) => {
        this.#lastLeaseReadError = err.message;
        return null;
      },
    );
    const id = entry?.operation === 'PUT' ? entry.string() : undefined;
    return this.members.find((member) => member.id === id);
  }

  /**
   * Resolves once a member other than `previous` has started a leader term after `since`, with
   * that member and its 'this node is the ingest leader' line (which names its marker's seq).
   */
  async newLeaderSince(previous: ClusterMember, since: number): Promise<{ member: ClusterMember; began: LogRecord }> {
    let found: { member: ClusterMember; began: LogRecord } | undefined;
    await waitUntil(
      () => {
        for (const member of this.members) {
          const began = member.id === previous.id ? undefined : member.process.logs.find((record) => record.time >= since && record.msg === 'this node is the ingest leader');
          if (began && (found === undefined || began.time < found.began.time)) found = { member, began };
        }
        return found !== undefined;
      },
      `another node than ${previous.id} to lead`,
      30_000,
    );
    return found!;
  }

  /** Resolves once `member`'s buffer holds the relay's newest frame. */
  async settled(member: ClusterMember): Promise<void> {
    await waitUntil(
      async () => ((await stats(member.process.port)).upstreamCursor?.seq ?? 0) >= this.feed.lastSeq,
      `node ${member.id} to hold upstream seq ${this.feed.lastSeq}`,
      90_000,
    ).catch((err: Error) => {
      // Told when the wait fails, not when it starts (a string argument is built before the wait).
      throw new Error(`${err.message}\n${member.process.tail()}\n${this.story()}`);
    });
  }

  /**
   * What every member said of leading, of the relay and of what went wrong (warnings, errors), and the cursor
   * each relay connection resumed after (null: live): a wait for events that never come says why.
   * cluster.test.ts once lost the first 600 frames under load with only the waiting node's lines to show.
   */
  story(): string {
    const told = this.members.map((member) => {
      const lines = member.process.logs.filter((record) => record.level >= 40 || /leader|upstream/.test(record.msg)).slice(-15);
      return `node ${member.id} (warnings, errors, leading, relay):\n${lines.map((record) => JSON.stringify(record)).join('\n')}`;
    });
    return `${told.join('\n')}\nrelay connections resumed after: ${JSON.stringify(this.relay.cursors)}`;
  }

  /** Every event a member serves from its oldest, as the raw JSON texts a client receives. */
  async allEvents(member: ClusterMember): Promise<string[]> {
    const { eventCount } = await stats(member.process.port);
    const subscription = await Subscription.open(member.process.port, 'cursor=1');
    await subscription.waitForCount(eventCount, `${eventCount} events from node ${member.id}`, 60_000);
    await subscription.close();
    return subscription.texts;
  }

  /**
   * Every member holds exactly the upstream's ops once each, in order, with identical bytes
   * (time_us and all): every op from the first the stream holds, if that is a warm-up frame's
   * (start() lost the ones before it, see warmUp), or else every op the relay was given.
   */
  async assertConsistent(): Promise<string[]> {
    for (const member of this.members) await this.settled(member);
    const [first, ...rest] = await Promise.all(this.members.map((member) => this.allEvents(member)));
    const held = first!.map((text) => eventOpId(JSON.parse(text)));
    const ops = upstreamOpIds(this.relay.frames.map((frame) => ({ seq: frame.seq!, bytes: frame.bytes })));
    const from = ops.find((op) => op.id === held[0] && op.seq <= this.#warmUpSeq)?.seq ?? 0;
    assertSameOps(held, ops.filter((op) => op.seq >= from).map((op) => op.id));
    for (const [i, other] of rest.entries()) {
      assert.deepEqual(other, first, `node ${this.members[i + 1]!.id} serves what node ${this.members[0]!.id} serves, byte for byte`);
    }
    const times = first!.map((text) => JSON.parse(text).time_us as number);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, `time_us increases at #${i}`);
    return first!;
  }

  /**
   * Resolves once the event stream and the lease bucket each have a leader and every replica
   * current (none offline or behind), with the replicas that were not, at the first look. A NATS
   * server restarted after a loss (NatsCluster.waitReady: its JetStream answers) may still be
   * catching up on both; losing another server then leaves one current copy of three, which is a
   * quorum loss (nats-quorum-loss.test.ts), not the loss of one server.
   */
  async replicasCurrent(): Promise<string[]> {
    const jsm = await jetstreamManager(this.observer);
    let behind: string[] | undefined;
    await waitUntil(
      async () => {
        const now: string[] = [];
        for (const stream of ['contrail-events', 'KV_contrail-leader']) {
          const cluster = await jsm.streams.info(stream).then((info) => info.cluster, () => undefined);
          if (cluster?.leader === undefined) now.push(`${stream}: no leader`);
          for (const peer of cluster?.replicas ?? []) if (!peer.current || peer.offline) now.push(`${stream}: ${peer.name}${peer.offline ? ' offline' : ' behind'}`);
        }
        behind ??= now;
        return now.length === 0;
      },
      'every replica of the event stream and the lease bucket to be current',
      60_000,
    );
    return behind!;
  }

  /** Every record in the cluster's event stream, oldest first. */
  streamRecords(): Promise<StreamRecord[]> {
    return readStreamRecords(this.observer, 'contrail-events');
  }

  /** The newest record in the cluster's event stream and its seq, or undefined while it is empty. */
  async lastStreamRecord(): Promise<{ seq: number; record: StreamRecord } | undefined> {
    const last = await (await jetstreamManager(this.observer)).streams.getMessage('contrail-events', { last_by_subj: 'contrail.events' }).catch(() => null);
    return last ? { seq: last.seq, record: decodeStreamRecord(last.data) } : undefined;
  }

  /**
   * Resolves once the stream's newest record is a batch that read the relay past upstream seq
   * `upstreamSeq` (appended by `by`, when given), with the member that appended it: ingest is
   * under way beyond a point the test chose. A stream NATS cannot answer for (no quorum) is asked again.
   */
  async appendedPast(upstreamSeq: number, by?: ClusterMember): Promise<ClusterMember> {
    let appender: ClusterMember | undefined;
    await waitUntil(
      async () => {
        const last = await this.lastStreamRecord().catch(() => undefined);
        if (last?.record.type !== 'batch' || (last.record.batch.cursor?.seq ?? 0) <= upstreamSeq) return false;
        const node = last.record.node;
        appender = this.members.find((member) => member.id === node && (by === undefined || member === by));
        return appender !== undefined;
      },
      `a batch ${by ? `from node ${by.id} ` : ''}past upstream seq ${upstreamSeq} at the stream's end`,
      60_000,
    );
    return appender!;
  }

  /** Stops everything, nodes first (before NATS and their data dirs go), every step even when one fails (cleanup.ts). */
  async stop(): Promise<void> {
    const proxies = this.members.flatMap((member) => member.natsProxies);
    await runSteps([
      () => this.feed.stop(),
      () => Subscription.closeAll(),
      // Held bytes are let through, so that nodes cut off by a test can stop gracefully.
      () => proxies.forEach((proxy) => proxy.release()),
      () => settleAll(this.members.map((member) => member.process.stop())),
      () => settleAll(proxies.map((proxy) => proxy.close())),
      () => this.observer.close(),
      () => this.relay.stop(),
      () => this.nats.stop(),
      ...this.#dirs.map((dir) => () => dir.remove()),
    ]);
  }
}
