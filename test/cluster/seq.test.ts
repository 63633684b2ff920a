/**
 * Invariant 13 and cluster.test.ts's header promise "the same time_us and seq on every node", and
 * v2 cursors (`subscribeEvents`) are seqs; but assertConsistent compares the v1 JSON a client gets,
 * which carries no seq, so no cluster test looked at the seqs. Here: three nodes, a leader killed
 * mid-stream (the next leader numbers on from the stream), then every node's buffer is read
 * directly (read-only, as `contrail inspect` does): the same (seq, time_us) pairs on every node,
 * seqs strictly increasing with time_us. (Nodes that apply the same events from seq 1 would agree
 * even if each numbered them itself; the second test tells: a node that fell behind the stream
 * retention has a gap, and must keep the leader's numbers after it. A follower that numbered its
 * own events — store.commit instead of commitAssigned — fails it, and passes every other cluster test.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { FakeRelay } from '../support/fake-relay.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { stats, waitUntil } from '../support/subscribe-client.ts';
import { SyntheticFirehose } from '../support/synthetic.ts';

function seqs(dataDir: string): string[] {
  const store = new EventStore({ dataDir, hotLogBytes: 0, readOnly: true });
  try {
    const out: string[] = [];
    let position = 0;
    for (;;) {
      const read = store.readAfter(position, { maxEntries: 1_000 });
      if (read.entries.length === 0 && read.position === position) return out;
      for (const entry of read.entries) out.push(`${entry.seq} ${entry.timeUs}`);
      position = read.position;
    }
  } finally {
    void store.close();
  }
}

test('every node holds each event under the same seq, across a change of leader', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b', 'c'], leaseMs: 2_000 });
  t.after(() => cluster.stop());
  cluster.feed.push(300);
  await cluster.assertConsistent();

  cluster.feed.flow(3);
  try {
    // The node appending, killed mid-ingest; the feed flows on until the new leader has appended
    // frames pushed after the old one is back.
    const old = await cluster.appendedPast(cluster.feed.lastSeq);
    const killedAt = Date.now();
    old.process.child.kill('SIGKILL');
    await old.process.exit;
    await cluster.newLeaderSince(old, killedAt);
    await cluster.restart(old);
    await cluster.appendedPast(cluster.feed.lastSeq);
  } finally {
    cluster.feed.stop();
  }
  cluster.feed.push(200);
  const events = await cluster.assertConsistent();

  const [first, ...rest] = cluster.members.map((member) => ({ id: member.id, seqs: seqs(member.dataDir) }));
  assert.equal(first!.seqs.length, events.length, 'the buffer read directly holds what the node serves');
  for (const other of rest) assert.deepEqual(other.seqs, first!.seqs, `node ${other.id} numbers every event as node ${first!.id} does`);
  const numbers = first!.seqs.map((pair) => Number(pair.split(' ')[0]));
  for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i]! > numbers[i - 1]!, `seq increases at #${i}`);
  t.diagnostic(`${numbers.length} events, seqs ${numbers[0]}…${numbers.at(-1)}`);
});

test('a node that fell behind the stream retention keeps the leader\'s seqs after its gap (a v2 cursor means the same event on both)', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const RETENTION_MS = 8_000;
  // Nodes stop before the data dirs go and NATS stops (see cleanup.ts).
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const firehose = new SyntheticFirehose({ seed: 12, accounts: 100 });
  let lastSeq = 0;
  const push = (count: number) => {
    for (const frame of firehose.frames(count)) {
      relay.push({ seq: frame.seq, bytes: frame.bytes });
      lastSeq = frame.seq;
    }
  };
  const dirs = ['a', 'b'].map((id) => tempDir(`contrail-seq-${id}-`));
  defer(() => dirs.forEach((dir) => dir.remove()));
  const launch = (i: number) =>
    ContrailProcess.serve([
      '--upstream', relay.url, '--data-dir', dirs[i]!.path, '--nats', nats.urls[0]!, '--nats-replicas', '1',
      '--nats-retention', `${RETENTION_MS}ms`, '--nats-lease', '1s', '--nats-name', 'seqgap', '--node-id', `node-${i}`,
    ]);
  const leader = launch(0);
  defer(() => leader.stop());
  await leader.waitForLog('this node is the ingest leader');
  let away = launch(1);
  await away.waitServing();
  await relay.waitForConnections(1);
  const settled = (node: ContrailProcess) =>
    waitUntil(async () => ((await stats(node.port)).upstreamCursor?.seq ?? 0) >= lastSeq, `upstream seq ${lastSeq}\n${node.tail()}`, 30_000);

  push(100);
  await settled(away);
  away.child.kill('SIGKILL');
  await away.exit;
  push(100); // the events the away node misses: gone from the stream before it returns
  await settled(leader);
  const observer = await connect({ servers: nats.urls[0]! });
  defer(() => observer.close());
  const jsm = await jetstreamManager(observer);
  const streamState = async () => (await jsm.streams.info('seqgap-events')).state;
  const missedThrough = (await streamState()).last_seq;
  await waitUntil(async () => (await streamState()).first_seq > missedThrough, `the stream's retention to drop its batches through seq ${missedThrough}`, 60_000);

  // Frames flow while it returns, so batches after its gap are in the stream however long it
  // takes to read them (each expires RETENTION_MS after it was appended: one push could be gone
  // before a node starting on a loaded machine reads it).
  const flow = setInterval(() => push(5), 100);
  try {
    away = launch(1);
    defer(() => away.stop());
    await away.waitForLog((record) => record.msg.startsWith("THE CLUSTER STREAM'S FIRST SEQ MOVED PAST THIS NODE'S POSITION"));
  } finally {
    clearInterval(flow);
  }
  await settled(leader);
  await settled(away);

  const ofLeader = new Set(seqs(dirs[0]!.path));
  const ofAway = seqs(dirs[1]!.path);
  assert.ok(ofAway.length > 100, `the returning node holds the 100 events before its gap and those after it (${ofAway.length})`);
  const foreign = ofAway.filter((pair) => !ofLeader.has(pair));
  assert.deepEqual(foreign.slice(0, 5), [], `${foreign.length} of the returning node's (seq, time_us) pairs are not the leader's`);
});
