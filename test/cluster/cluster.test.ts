/**
 * The cluster mode against real parts: a 3-server NATS JetStream cluster (Debian's nats-server)
 * and three `contrail serve --nats …` processes reading one FakeRelay on 127.0.0.1. Leaders are
 * killed, paused and resumed, a NATS server is killed, a node is away while the stream moves on;
 * after each, every node must hold exactly the upstream's ops, once each, in order, with the same
 * time_us and seq on every node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { ServeProcess } from '../support/serve-process.ts';
import { FakeRelay } from '../support/fake-relay.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { assertSameOps, eventOpId, upstreamOpIds } from '../support/op-ids.ts';
import { stats, Subscription, waitUntil } from '../support/subscribe-client.ts';
import { SyntheticFirehose } from '../support/synthetic.ts';
import { decodeStreamRecord, type StreamRecord } from '../../src/cluster/stream-record.ts';

const skip = natsServerMissing();
const LEASE_MS = 2_000;

interface Node {
  id: string;
  dataDir: string;
  process: ServeProcess;
}

/** A relay fed from one synthetic stream, so revs keep increasing across every push. */
class Feed {
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

describe('cluster on NATS JetStream', { skip, timeout: 600_000 }, () => {
  let nats: NatsCluster;
  let relay: FakeRelay;
  let feed: Feed;
  let observer: NatsConnection;
  const dirs: Array<{ remove(): void }> = [];
  const nodes: Node[] = [];

  function launch(node: Omit<Node, 'process'>): Node {
    const process = new ServeProcess([
      '--upstream', relay.url, '--data-dir', node.dataDir, '--nats', nats.urls.join(','),
      '--nats-lease', `${LEASE_MS}ms`, '--node-id', node.id,
    ]);
    return { ...node, process };
  }

  before(async () => {
    nats = await NatsCluster.start(3);
    relay = await FakeRelay.start();
    feed = new Feed(relay);
    for (const id of ['a', 'b', 'c']) {
      const dir = tempDir(`contrail-node-${id}-`);
      dirs.push(dir);
      nodes.push(launch({ id, dataDir: dir.path }));
    }
    for (const node of nodes) await node.process.waitServing();
    // A new buffer starts live: the leader must be reading the relay before frames are pushed.
    await relay.waitForConnections(1, 30_000);
    observer = await connect({ servers: nats.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });

  after(async () => {
    feed?.stop();
    await Subscription.closeAll();
    await Promise.all(nodes.map((node) => node.process.stop()));
    await observer?.close();
    await relay?.stop();
    await nats?.stop();
    for (const dir of dirs) dir.remove();
  });

  /** The node holding the ingest lease, read from NATS (the authority), once one holds it. */
  async function leader(): Promise<Node> {
    const kv = await new Kvm(jetstream(observer)).open('contrail-leader');
    let holder: Node | undefined;
    await waitUntil(
      async () => {
        const entry = await kv.get('leader').catch(() => null);
        const id = entry?.operation === 'PUT' ? entry.string() : undefined;
        holder = nodes.find((node) => node.id === id);
        return holder !== undefined;
      },
      'a node to hold the ingest lease',
      30_000,
    );
    return holder!;
  }

  /** Resolves once a node other than `previous` has started a leader term after `since`. */
  async function newLeaderSince(previous: Node, since: number): Promise<void> {
    await waitUntil(
      () => nodes.some((node) => node.id !== previous.id && node.process.logs.some((record) => record.time >= since && record.msg === 'this node is the ingest leader')),
      `another node than ${previous.id} to lead`,
      30_000,
    );
  }

  async function settleAll(): Promise<void> {
    for (const node of nodes) {
      await waitUntil(
        async () => ((await stats(node.process.port)).upstreamCursor?.seq ?? 0) >= feed.lastSeq,
        `node ${node.id} to hold upstream seq ${feed.lastSeq}\n${node.process.tail()}`,
        90_000,
      );
    }
  }

  /** Every event a node serves from its oldest, as the raw JSON texts a client receives. */
  async function allEvents(node: Node): Promise<string[]> {
    const { eventCount } = await stats(node.process.port);
    const subscription = await Subscription.open(node.process.port, 'cursor=1');
    await subscription.waitForCount(eventCount, `${eventCount} events from node ${node.id}`, 60_000);
    await subscription.close();
    return subscription.texts;
  }

  /** Every node holds exactly the upstream's ops once each, in order, with identical bytes (time_us and all). */
  async function assertConsistent(): Promise<string[]> {
    await settleAll();
    const [first, ...rest] = await Promise.all(nodes.map(allEvents));
    const expected = upstreamOpIds(relay.frames.map((frame) => ({ seq: frame.seq!, bytes: frame.bytes }))).map((op) => op.id);
    assertSameOps(first!.map((text) => eventOpId(JSON.parse(text))), expected);
    for (const [i, other] of rest.entries()) assert.deepEqual(other, first, `node ${nodes[i + 1]!.id} serves what node ${nodes[0]!.id} serves, byte for byte`);
    const times = first!.map((text) => JSON.parse(text).time_us as number);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, `time_us increases at #${i}`);
    return first!;
  }

  test('every node ends with the same events, same time_us, same order', async () => {
    feed.push(600);
    const events = await assertConsistent();
    assert.ok(events.length >= 600);
  });

  test('a client that leaves one node resumes on another with its last time_us and misses nothing', async () => {
    const [a, b] = nodes;
    const first = await Subscription.open(a!.process.port, 'cursor=1');
    feed.push(200);
    await first.waitForCount(300, '300 events from node a');
    await first.close();
    const lastSeen = first.events.at(-1)!.time_us as number;
    const total = (await Promise.all([settleAll(), stats(b!.process.port)]))[1].eventCount;
    const second = await Subscription.open(b!.process.port, `cursor=${lastSeen}`);
    const remaining = total - first.events.length + 1;
    await second.waitForCount(remaining, `${remaining} events from node b`);
    await second.close();
    assert.equal(second.events[0]!.time_us, lastSeen, 'the cursor is inclusive on every node');
    const joined = [...first.texts, ...second.texts.slice(1)];
    assert.deepEqual(joined, await allEvents(a!), 'the two halves are the whole stream, once each');
  });

  test('kill -9 of the leader 10 times during ingest: another node takes over, nothing lost or repeated', async (t) => {
    const takeovers: number[] = [];
    feed.flow(4);
    try {
      for (let kill = 0; kill < 10; kill++) {
        const old = await leader();
        await new Promise((resolve) => setTimeout(resolve, 300 + 100 * (kill % 4)));
        const killedAt = Date.now();
        old.process.signal('SIGKILL');
        await old.process.exited;
        await newLeaderSince(old, killedAt);
        takeovers.push(Date.now() - killedAt);
        nodes[nodes.indexOf(old)] = launch(old);
        await nodes.find((node) => node.id === old.id)!.process.waitServing();
      }
    } finally {
      feed.stop();
    }
    takeovers.sort((x, y) => x - y);
    t.diagnostic(`takeover after kill -9 (lease ${LEASE_MS} ms): median ${takeovers[5]} ms, max ${takeovers[9]} ms`);
    await assertConsistent();
  });

  test('a paused leader that wakes after a new leader took over appends nothing', async () => {
    const paused = await leader();
    feed.flow(2);
    try {
      const pausedAt = Date.now();
      paused.process.signal('SIGSTOP');
      await newLeaderSince(paused, pausedAt);
      // Frames keep reaching the paused leader's socket too: it wakes up with plenty to append.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const resumedFrom = paused.process.logs.length;
      paused.process.signal('SIGCONT');
      await paused.process.waitLog('', 10_000, resumedFrom);
      await waitUntil(
        () => paused.process.logs.slice(resumedFrom).some((record) => /lost the ingest lease|another node appended/.test(record.msg)),
        `the woken leader to step down\n${paused.process.tail()}`,
      );
    } finally {
      feed.stop();
    }
    // The stream itself: after the new leader's marker, no batch from the paused node.
    const records = await streamRecords();
    let marker = records.length - 1;
    while (marker >= 0 && !(records[marker]!.type === 'leader' && records[marker]!.node !== paused.id)) marker--;
    assert.ok(marker >= 0, "the new leader's marker is in the stream");
    const late = records.slice(marker + 1).filter((record) => record.node === paused.id);
    assert.equal(late.length, 0, `${late.length} stream records from the deposed leader after the new leader's marker`);
    await assertConsistent();
  });

  test('one NATS server of three killed: ingest and serving go on', async () => {
    nats.kill(0);
    try {
      feed.push(300);
      await assertConsistent();
    } finally {
      nats.restart(0);
    }
    await nats.waitReady();
  });

  test('a node away while the stream moves on catches up when it returns', async () => {
    const leaderNow = await leader();
    const target = nodes.find((node) => node.id !== leaderNow.id)!;
    target.process.signal('SIGKILL');
    await target.process.exited;
    feed.push(2_000);
    await waitUntil(async () => ((await stats(leaderNow.process.port)).upstreamCursor?.seq ?? 0) >= feed.lastSeq, 'the leader to ingest the backlog', 60_000);
    nodes[nodes.indexOf(target)] = launch(target);
    await nodes.find((node) => node.id === target.id)!.process.waitServing();
    await assertConsistent();
  });

  /** Every record in the cluster's event stream, oldest first. */
  async function streamRecords(): Promise<StreamRecord[]> {
    const { state } = await (await jetstreamManager(observer)).streams.info('contrail-events');
    const messages = await (await jetstream(observer).consumers.get('contrail-events')).consume();
    const records: StreamRecord[] = [];
    for await (const message of messages) {
      records.push(decodeStreamRecord(message.data));
      if (message.seq >= state.last_seq) break;
    }
    await messages.close();
    return records;
  }
});
