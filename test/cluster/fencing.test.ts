/**
 * The stream's fencing against a real nats-server (max_payload 64KB), deterministically: a new
 * leader's marker lands exactly where a deposed leader's next message was to go, while that
 * leader publishes a batch of several parts at once. Its first part names the marker's
 * predecessor and is refused; its second names the marker's seq as its predecessor's — only
 * the message id it names (its first part's) can refuse it. Nothing of the deposed leader may
 * follow the marker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import pino from 'pino';
import { openCluster, type ClusterConnection } from '../../src/cluster/nats.ts';
import { decodeStreamRecord, type StreamRecord } from '../../src/cluster/stream-record.ts';
import { CutOffBatchError, DeposedError, StreamWriter } from '../../src/cluster/stream-writer.ts';
import type { Entry } from '../../src/events/index.ts';
import type { Batch } from '../../src/store/index.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

/** Incompressible events, enough for several 64 KB messages. */
function bigBatch(): Batch {
  const entries: Entry[] = Array.from({ length: 120 }, (_, i) => ({
    timeUs: 1_700_000_000_000_000 + i,
    seq: 1 + i,
    did: 'did:plc:fencingfencingfencingfe',
    kind: 'commit',
    collection: 'app.bsky.feed.post',
    json: Buffer.from(`{"text":"${randomBytes(1_500).toString('base64')}"}`),
  }));
  return { entries, revs: new Map(), cursor: { url: 'ws://relay.invalid', seq: 7 } };
}

async function streamRecords(connection: ClusterConnection): Promise<StreamRecord[]> {
  const { state } = await connection.jsm.streams.info(connection.streamName);
  const messages = await (await jetstream(connection.nc).consumers.get(connection.streamName)).consume();
  const records: StreamRecord[] = [];
  for await (const message of messages) {
    records.push(decodeStreamRecord(message.data));
    if (message.seq >= state.last_seq) break;
  }
  await messages.close();
  return records;
}

test('a batch in flight from a deposed leader gets no part in after the new leader marker', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const nats = await NatsCluster.start(1, { maxPayload: '64KB' });
  t.after(() => nats.stop());
  const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'fencing' };
  const logger = pino({ level: 'silent' });
  const oldConnection = await openCluster({ ...options, nodeId: 'old' }, logger);
  const newConnection = await openCluster({ ...options, nodeId: 'new' }, logger);
  t.after(() => Promise.all([oldConnection.nc.close(), newConnection.nc.close()]));
  const writerOf = (connection: ClusterConnection, node: string, appended: number[]) =>
    new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, node, (_first, last) => appended.push(last));
  const oldAppended: number[] = [];
  const deposed = writerOf(oldConnection, 'old', oldAppended);
  const successor = writerOf(newConnection, 'new', []);

  const oldMarker = await deposed.fence();
  // The successor's marker takes the seq the deposed leader's first part expects to get.
  const newMarker = await successor.fence();
  assert.equal(newMarker, oldMarker + 1);

  const batch = bigBatch();
  await assert.rejects(deposed.append(batch), (err) => err instanceof DeposedError || err instanceof CutOffBatchError);
  assert.deepEqual(oldAppended, [], 'the deposed leader was told of no appended batch');

  const records = await streamRecords(oldConnection);
  const after = records.slice(records.findIndex((record) => record.type === 'leader' && record.node === 'new') + 1);
  assert.deepEqual(
    after.map((record) => record.node),
    [],
    'nothing of the deposed leader follows the new marker',
  );

  // The successor appends right after its marker, and its own parts chain.
  await successor.append(bigBatch());
  const mine = (await streamRecords(newConnection)).slice(records.length);
  assert.ok(mine.length >= 2, `the batch went out as ${mine.length} messages`);
  assert.ok(mine.every((record) => record.type === 'batch' && record.node === 'new'));
});
