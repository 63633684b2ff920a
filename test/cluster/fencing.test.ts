/**
 * The stream's fencing against a real nats-server (max_payload 64KB), deterministically: a new
 * leader's marker lands exactly where a deposed leader's next message was to go, while that
 * leader has several messages in flight — the parts of one batch, or two batches (a leader
 * publishes the next batch before the one ahead is acknowledged). The first message names the
 * marker's predecessor and is refused; the second names the marker's seq as its predecessor's —
 * only the message id it names (the first's) can refuse it. Nothing of the deposed leader may
 * follow the marker.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { openCluster, type ClusterConnection } from '../../src/cluster/nats.ts';
import type { StreamRecord } from '../../src/cluster/stream-record.ts';
import { CutOffBatchError, DeposedError, StreamWriter } from '../../src/cluster/stream-writer.ts';
import type { Entry } from '../../src/events/index.ts';
import type { Batch } from '../../src/store/index.ts';
import { NatsCluster, natsServerMissing, readStreamRecords } from '../support/nats-cluster.ts';

/** Incompressible events: 120 make several 64 KB messages. */
function batchOf(count: number): Batch {
  const entries: Entry[] = Array.from({ length: count }, (_, i) => ({
    timeUs: 1_700_000_000_000_000 + i,
    seq: 1 + i,
    did: 'did:plc:fencingfencingfencingfe',
    kind: 'commit',
    collection: 'app.bsky.feed.post',
    json: Buffer.from(`{"text":"${randomBytes(1_500).toString('base64')}"}`),
  }));
  return { entries, revs: new Map(), cursor: { url: 'ws://relay.invalid', seq: 7 } };
}

function streamRecords(connection: ClusterConnection): Promise<StreamRecord[]> {
  return readStreamRecords(connection.nc, connection.streamName);
}

async function writers(t: TestContext) {
  const nats = await NatsCluster.start(1, { maxPayload: '64KB' });
  t.after(() => nats.stop());
  const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'fencing' };
  const logger = pino({ level: 'silent' });
  const oldConnection = await openCluster({ ...options, nodeId: 'old' }, logger);
  const newConnection = await openCluster({ ...options, nodeId: 'new' }, logger);
  t.after(() => Promise.all([oldConnection.nc.close(), newConnection.nc.close()]));
  const oldAppended: number[] = [];
  const writerOf = (connection: ClusterConnection, node: string, appended: number[]) =>
    new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, node, (_first, last) => appended.push(last));
  const deposed = writerOf(oldConnection, 'old', oldAppended);
  const successor = writerOf(newConnection, 'new', []);
  const oldMarker = await deposed.fence();
  // The successor's marker takes the seq the deposed leader's next message expects to get.
  const newMarker = await successor.fence();
  assert.equal(newMarker, oldMarker + 1);
  const nothingOfTheDeposedAfterTheMarker = async () => {
    assert.deepEqual(oldAppended, [], 'the deposed leader was told of no appended batch');
    const records = await streamRecords(oldConnection);
    const after = records.slice(records.findIndex((record) => record.type === 'leader' && record.node === 'new') + 1);
    assert.deepEqual(
      after.map((record) => record.node),
      [],
      'nothing of the deposed leader follows the new marker',
    );
    return records.length;
  };
  return { deposed, successor, newConnection, nothingOfTheDeposedAfterTheMarker };
}

const refused = (err: unknown) => err instanceof DeposedError || err instanceof CutOffBatchError;

test('a batch of several parts in flight from a deposed leader gets no part in after the new leader marker', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { deposed, successor, newConnection, nothingOfTheDeposedAfterTheMarker } = await writers(t);
  await assert.rejects(deposed.append(batchOf(120)), refused);
  const before = await nothingOfTheDeposedAfterTheMarker();

  // The successor appends right after its marker, and its own parts chain.
  await successor.append(batchOf(120));
  const mine = (await streamRecords(newConnection)).slice(before);
  assert.ok(mine.length >= 2, `the batch went out as ${mine.length} messages`);
  assert.ok(mine.every((record) => record.type === 'batch' && record.node === 'new'));
});

test('two batches in flight from a deposed leader: neither gets in after the new leader marker', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { deposed, successor, nothingOfTheDeposedAfterTheMarker } = await writers(t);
  const [first, second] = await Promise.allSettled([deposed.append(batchOf(2)), deposed.append(batchOf(2))]);
  assert.equal(first.status, 'rejected');
  assert.equal(second.status, 'rejected');
  assert.ok(refused((second as PromiseRejectedResult).reason));
  await nothingOfTheDeposedAfterTheMarker();
  // Two batches of the successor in flight at once both get in, in order.
  assert.deepEqual(await Promise.all([successor.append(batchOf(2)), successor.append(batchOf(2))]), [3, 4]);
});
