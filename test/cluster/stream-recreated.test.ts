/**
 * A node's resume position (cluster-position.json: the stream seq its buffer holds) names a seq
 * of one stream's life. If that stream is gone and made again under the same name — its NATS
 * storage lost (R1), or an operator removed it to start over — openCluster creates an empty one,
 * seqs start again at 1, and the saved position points past its end: the follower must not wait
 * for seqs that will only come after as many new messages, while the new leader's batches go
 * into the stream and none reaches any buffer (the leader's own appends included: ownAppend
 * finds its buffer "past" them). The events appended after the re-creation must be applied.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore } from '../../src/store/index.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { within } from '../support/poll.ts';
import { batchAfter } from '../support/store-reads.ts';

const RELAY = 'ws://relay.invalid';
const DID = 'did:plc:recreatedrecreatedrecreat';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'recreated', nodeId: 'a' };

/**
 * One NATS server and a node's buffer; `cleanups` (the test's followers and connections) run in
 * reverse once the test ends, then the store closes and NATS stops.
 */
async function nodeOnOneNatsServer(t: TestContext, dirPrefix: string) {
  const nats = await NatsCluster.start(1);
  const dir = tempDir(dirPrefix);
  const logger = pino({ level: 'silent' });
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  const cleanups: Array<() => Promise<unknown> | void> = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await store.close();
    dir.remove();
    await nats.stop();
  });
  return { nats, dir, logger, store, cleanups };
}

test('after the cluster stream is made again (seqs from 1), a node with a saved position applies the new stream\'s batches', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { nats, dir, logger, store, cleanups } = await nodeOnOneNatsServer(t, 'contrail-stream-recreated-');

  // The stream's first life: a marker and five batches, all applied; the node stops (saving seq 6).
  const first = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  let follower = new StreamFollower(first, store, dir.path, logger);
  await follower.start();
  let writer = new StreamWriter(first.nc, first.js, first.jsm, first.streamName, first.subject, 'a', () => {});
  await follower.waitApplied(await writer.fence());
  for (let i = 1; i <= 5; i++) {
    // Appended one at a time, each numbered after the one before is in the buffer.
    assert.equal(await within(5_000, follower.waitApplied(await writer.append(batchAfter(store, DID, RELAY, i)))), undefined);
  }
  assert.equal(follower.appliedSeq, 6);
  await follower.stop();
  const eventsBefore = store.lastSeq;

  // The stream is lost and made again empty (openCluster creates what does not exist).
  await first.jsm.streams.delete(first.streamName);
  await first.nc.close();
  const second = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  cleanups.push(() => second.nc.close());
  const resumed = new StreamFollower(second, store, dir.path, logger);
  follower = resumed;
  await resumed.start();
  cleanups.push(() => resumed.stop());
  writer = new StreamWriter(second.nc, second.js, second.jsm, second.streamName, second.subject, 'a', () => {});
  const marker = await writer.fence();
  assert.equal(marker, 1, 'the new stream starts at seq 1');
  await follower.waitApplied(marker);
  const next = batchAfter(store, DID, RELAY, 6);
  await writer.append(next);

  const deadline = Date.now() + 5_000;
  while (store.lastSeq < next.entries[0]!.seq! && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(
    store.lastSeq,
    next.entries[0]!.seq,
    `the batch appended to the new stream (seq 2) reaches the buffer (it holds seq ${store.lastSeq}, ${eventsBefore} before; the follower's applied position is ${follower.appliedSeq})`,
  );
});

test('a node ahead of the leader of a stream made again stops with the foreign-buffer error, not passing the leader\'s batches over as its own', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { nats, dir, logger, store, cleanups } = await nodeOnOneNatsServer(t, 'contrail-stream-recreated-ahead-');

  // The stream's first life: this node applies seqs 1-5 and stops.
  const first = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  const follower = new StreamFollower(first, store, dir.path, logger);
  await follower.start();
  const writer = new StreamWriter(first.nc, first.js, first.jsm, first.streamName, first.subject, 'a', () => {});
  await follower.waitApplied(await writer.fence());
  for (let i = 1; i <= 5; i++) await follower.waitApplied(await writer.append(batchAfter(store, DID, RELAY, i)));
  await follower.stop();
  const held4 = store.atSeq(4)!;
  assert.equal(held4.seq, 4);

  // The stream is made again, and its new leader is a node that held only seqs 1-3: it numbers its next event 4.
  await first.jsm.streams.delete(first.streamName);
  await first.nc.close();
  const second = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  cleanups.push(() => second.nc.close());
  const resumed = new StreamFollower(second, store, dir.path, logger);
  await resumed.start();
  cleanups.push(() => resumed.stop());
  const leader = new StreamWriter(second.nc, second.js, second.jsm, second.streamName, second.subject, 'b', () => {});
  await leader.fence();
  const leadersFourth = held4.timeUs + 500;
  await leader.append({
    entries: [{ timeUs: leadersFourth, seq: 4, did: DID, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${leadersFourth},"kind":"identity"}`) }],
    revs: new Map(),
    cursor: { url: RELAY, seq: 6 },
  });

  const failed = await within(10_000, resumed.failed);
  assert.notEqual(failed, 'timed out', 'the follower stops: its seq 4 is another event than the stream\'s');
  assert.match((failed as Error).message, new RegExp(`the stream's seq 4 is time_us ${leadersFourth}, the buffer has time_us ${held4.timeUs} under it\\).*empty --data-dir`));
  await assert.rejects(resumed.waitApplied(3), /not read from this cluster's stream/, 'nothing waits for a follower that stopped');
  assert.equal(resumed.appliedSeq, 1, 'the leader\'s batch (stream seq 2) was not passed over as applied');
});
