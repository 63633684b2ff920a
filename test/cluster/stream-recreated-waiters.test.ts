/**
 * A wait for the buffer to hold the stream through seq N (waitApplied: a new leader's wait for
 * its marker, a client's cursor ahead of the buffer waiting for the stream's end) names a seq of
 * one stream's life. When the stream is removed and made again, its seqs start from 1 and the
 * follower reads it from its start (follower.ts #readAgainFromStart): seq N of the new stream is
 * another message. Until session 19 the waits stayed and were answered by it, so a node could
 * begin a term on a marker that is gone, or take a client's cursor as a future one, with its buffer
 * holding nothing of what the wait was for. The wait must fail, saying the stream was made again,
 * and a client's wait for the stream's end must be answered by the new stream's end.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamEnd } from '../../src/cluster/stream-end.ts';
import { encodeStreamRecord } from '../../src/cluster/stream-record.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil, within } from '../support/poll.ts';
import { batchAfter } from '../support/store-reads.ts';

const RELAY = 'ws://relay.invalid';
const DID = 'did:plc:waiterswaiterswaiterswaite';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'waiters', nodeId: 'a' };

test('waits for seqs of a stream that is removed and made again are not answered by the new stream\'s seqs', { skip: natsServerMissing(), timeout: 90_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-stream-recreated-waiters-');
  defer(() => dir.remove());
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const logger = pino({ level: 'silent' });
  const connection = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  defer(() => connection.nc.close());
  const follower = new StreamFollower(connection, store, dir.path, logger);
  await follower.start();
  defer(() => follower.stop());

  // The first life: a marker and two batches, applied (seq 3); then the first part of a batch
  // whose leader died before its last (seq 4), which the buffer cannot apply alone.
  const first = new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, 'a', () => {});
  await follower.waitApplied(await first.fence());
  for (let i = 1; i <= 2; i++) await follower.waitApplied(await first.append(batchAfter(store, DID, RELAY, i)));
  const cutOff = encodeStreamRecord({ type: 'batch', node: 'a', batch: batchAfter(store, DID, RELAY, 3), more: true });
  const cutOffSeq = (await connection.js.publish(connection.subject, cutOff)).seq;
  assert.equal(follower.appliedSeq, cutOffSeq - 1);

  // Waits for seq 4 of this life: a leader's wait for a marker there, a client's for the stream's end.
  const waited = follower.waitApplied(cutOffSeq).then(
    () => 'answered',
    (err: Error) => err.message,
  );
  const streamEnd = new StreamEnd(connection, follower, logger);
  defer(() => streamEnd.stop());
  let endApplied = false;
  void streamEnd.applied().then(() => (endApplied = true));

  // The stream is removed and made again, and a new leader appends a marker and three batches to it.
  await connection.jsm.streams.delete(connection.streamName);
  assert.equal(await connection.restoreMissing(), true, 'the stream is made again');
  const second = new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, 'b', () => {});
  assert.equal(await second.fence(), 1, 'the new stream starts at seq 1');
  let lastSeq = 1;
  for (let i = 3; i <= 5; i++) {
    lastSeq = await second.append(batchAfter(store, DID, RELAY, i));
    await waitUntil(() => follower.appliedSeq >= lastSeq, `the follower to apply seq ${lastSeq} of the new stream`, 30_000);
  }
  assert.ok(follower.appliedSeq >= cutOffSeq, 'the buffer holds the new stream past the seq waited for');

  const outcome = await within(10_000, waited);
  assert.match(String(outcome), /made again/, `the wait for seq ${cutOffSeq} of the removed stream fails, saying so (it was ${JSON.stringify(outcome)})`);
  await waitUntil(() => endApplied, "the client's wait for the stream's end to be answered by the new stream's end", 30_000);
});
