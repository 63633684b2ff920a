/**
 * A contrail cluster for tests: real nats-server processes (nats-cluster.ts), `contrail serve
 * --nats …` processes reading one FakeRelay fed by a seeded synthetic firehose, and the checks
 * every cluster test ends with — every node holds exactly the upstream's ops, once each, in
 * order, with the same time_us and seq on every node — and a reader of the cluster's stream.
 */
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { StreamRecord } from '../../src/cluster/stream-record.ts';
import { FakeRelay } from './fake-relay.ts';
import { tempDir } from './gateway.ts';
import { NatsCluster, readStreamRecords } from './nats-cluster.ts';
import { assertSameOps, eventOpId, upstreamOpIds } from './op-ids.ts';
import { ContrailProcess } from './contrail-process.ts';
import { stats, Subscription, waitUntil } from './subscribe-client.ts';
import { SyntheticFirehose } from './synthetic.ts';

export interface ClusterMember {
  id: string;
  dataDir: string;
  process: ContrailProcess;
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
}

export class ContrailCluster {
  readonly members: ClusterMember[] = [];
  readonly #dirs: Array<{ remove(): void }> = [];

  private constructor(
    readonly nats: NatsCluster,
    readonly relay: FakeRelay,
    readonly feed: Feed,
    readonly observer: NatsConnection,
    readonly options: ContrailClusterOptions,
  ) {}

  /** Starts NATS, the relay and every node, and resolves once the leader reads the relay. */
  static async start(options: ContrailClusterOptions): Promise<ContrailCluster> {
    const nats = await NatsCluster.start(options.natsServers, { maxPayload: options.maxPayload });
    const relay = await FakeRelay.start();
    const observer = await connect({ servers: nats.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const cluster = new ContrailCluster(nats, relay, new Feed(relay), observer, options);
    for (const id of options.nodeIds) {
      const dir = tempDir(`contrail-node-${id}-`);
      cluster.#dirs.push(dir);
      cluster.members.push(cluster.#launch(id, dir.path));
    }
    for (const member of cluster.members) await member.process.waitServing();
    // A new buffer starts live: the leader must be reading the relay before frames are pushed.
    await relay.waitForConnections(1, 60_000);
    return cluster;
  }

  #launch(id: string, dataDir: string): ClusterMember {
    const process = ContrailProcess.serve([
      '--upstream', this.relay.url, '--data-dir', dataDir, '--nats', this.nats.urls.join(','),
      '--nats-replicas', String(this.options.natsServers), '--nats-lease', `${this.options.leaseMs}ms`, '--node-id', id,
    ]);
    return { id, dataDir, process };
  }

  /** Starts a member again (after a kill) on its own data dir, and resolves once it serves. */
  async restart(member: ClusterMember): Promise<ClusterMember> {
    const restarted = this.#launch(member.id, member.dataDir);
    this.members[this.members.indexOf(member)] = restarted;
    await restarted.process.waitServing();
    return restarted;
  }

  /** The member holding the ingest lease, read from NATS (the authority), once one holds it. */
  async leader(): Promise<ClusterMember> {
    const kv = await new Kvm(jetstream(this.observer)).open('contrail-leader');
    let holder: ClusterMember | undefined;
    await waitUntil(
      async () => {
        const entry = await kv.get('leader').catch(() => null);
        const id = entry?.operation === 'PUT' ? entry.string() : undefined;
        holder = this.members.find((member) => member.id === id);
        return holder !== undefined;
      },
      'a node to hold the ingest lease',
      30_000,
    );
    return holder!;
  }

  /** Resolves once a member other than `previous` has started a leader term after `since`. */
  async newLeaderSince(previous: ClusterMember, since: number): Promise<void> {
    await waitUntil(
      () =>
        this.members.some(
          (member) => member.id !== previous.id && member.process.logs.some((record) => record.time >= since && record.msg === 'this node is the ingest leader'),
        ),
      `another node than ${previous.id} to lead`,
      30_000,
    );
  }

  /** Resolves once `member`'s buffer holds the relay's newest frame. */
  async settled(member: ClusterMember): Promise<void> {
    await waitUntil(
      async () => ((await stats(member.process.port)).upstreamCursor?.seq ?? 0) >= this.feed.lastSeq,
      `node ${member.id} to hold upstream seq ${this.feed.lastSeq}\n${member.process.tail()}`,
      90_000,
    );
  }

  /** Every event a member serves from its oldest, as the raw JSON texts a client receives. */
  async allEvents(member: ClusterMember): Promise<string[]> {
    const { eventCount } = await stats(member.process.port);
    const subscription = await Subscription.open(member.process.port, 'cursor=1');
    await subscription.waitForCount(eventCount, `${eventCount} events from node ${member.id}`, 60_000);
    await subscription.close();
    return subscription.texts;
  }

  /** Every member holds exactly the upstream's ops once each, in order, with identical bytes (time_us and all). */
  async assertConsistent(): Promise<string[]> {
    for (const member of this.members) await this.settled(member);
    const [first, ...rest] = await Promise.all(this.members.map((member) => this.allEvents(member)));
    const expected = upstreamOpIds(this.relay.frames.map((frame) => ({ seq: frame.seq!, bytes: frame.bytes }))).map((op) => op.id);
    assertSameOps(first!.map((text) => eventOpId(JSON.parse(text))), expected);
    for (const [i, other] of rest.entries()) {
      assert.deepEqual(other, first, `node ${this.members[i + 1]!.id} serves what node ${this.members[0]!.id} serves, byte for byte`);
    }
    const times = first!.map((text) => JSON.parse(text).time_us as number);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, `time_us increases at #${i}`);
    return first!;
  }

  /** Every record in the cluster's event stream, oldest first. */
  streamRecords(): Promise<StreamRecord[]> {
    return readStreamRecords(this.observer, 'contrail-events');
  }

  async stop(): Promise<void> {
    this.feed.stop();
    await Subscription.closeAll();
    await Promise.all(this.members.map((member) => member.process.stop()));
    await this.observer.close();
    await this.relay.stop();
    await this.nats.stop();
    for (const dir of this.#dirs) dir.remove();
  }
}
