/**
 * Review (session 16): a node that restarts re-reads from its saved position (saved about once a
 * second) the batches it had applied since, and checks each one it passes over against its buffer
 * (the event at the batch's last seq must have its time_us: `atSeq`). A block of the buffer whose
 * bytes were damaged on disk (a bad sector: LMDB keeps no checksums) makes that read throw
 * DamagedBlockError, which the follower took for a failed read of the stream: it tried again every
 * second for good, its buffer standing still, never caught up. A single node serves on past such
 * a block (replays that reach it end with BufferDamaged, counted as buffer_damaged:
 * server-damaged-block.test.ts, the same server here); the follower must go on too. The damaged
 * block still names the time_us range its events had, so a batch whose time_us lies outside it is
 * still another cluster's, and stops the follower as an event with another time_us does.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster, type ClusterConnection } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { within } from '../support/poll.ts';
import { identityBatch } from '../support/store-reads.ts';

const DID = 'did:plc:damageddamageddamageddama';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'follower-damaged', nodeId: 'a' };
const BLOCK = 8;
const PER_BATCH = 4;
const logger = pino({ level: 'silent' });

/** The batch of PER_BATCH identity events from seq `first` on, at time_us `base` + seq. */
const batchFrom = (first: number, base: number) => identityBatch(DID, first, PER_BATCH, base);

/** Appends a marker and `batches` batches (stream seqs 1…batches + 1) of events at time_us `base` + seq. */
async function fill(cluster: ClusterConnection, batches: number, base: number): Promise<StreamWriter> {
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await writer.fence();
  for (let i = 0; i < batches; i++) await writer.append(batchFrom(1 + i * PER_BATCH, base));
  return writer;
}

/**
 * Flips a byte in every partition frame of the block whose newest event has time_us `end`, wherever
 * it lies in data.mdb (a small buffer's pages copied on write leave older copies in free pages).
 */
async function damageBlock(dataDir: string, end: number): Promise<void> {
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const blocks = raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' });
  const frames = [...blocks.getRange()].filter(({ key }) => key[0] === end).map(({ value }) => Buffer.from(value));
  await raw.close();
  assert.ok(frames.length > 0, `a block ends at time_us ${end}`);
  const file = readFileSync(join(dataDir, 'data.mdb'));
  for (const frame of frames) {
    let at = file.indexOf(frame);
    assert.ok(at > 0, 'the frame lies in data.mdb');
    for (; at >= 0; at = file.indexOf(frame, at + 1)) file[at + (frame.length >> 1)]! ^= 0x5a;
  }
  writeFileSync(join(dataDir, 'data.mdb'), file);
}

/**
 * A node that applied four batches (16 events: two blocks of BLOCK) and stopped, whose first block
 * is then damaged on disk and whose saved position is rewound to the marker, as a crash a second
 * after the batches leaves it: the batches are read again, the first two are checked in the damaged block.
 */
async function nodeWithDamagedBlock(t: Parameters<typeof cleanup>[0], base: number) {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-follower-damaged-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  let cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  defer(() => cluster.nc.close());
  const applying = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20, blockEvents: BLOCK });
  const first = new StreamFollower(cluster, applying, dir.path, logger);
  await first.start();
  await fill(cluster, 4, base);
  await within(10_000, first.waitApplied(5));
  await first.stop();
  assert.equal(applying.lastSeq, 16, 'the buffer holds the four batches');
  await applying.close();
  await damageBlock(dataDir, base + BLOCK);
  const positionPath = join(dir.path, 'cluster-position.json');
  const position = JSON.parse(readFileSync(positionPath, 'utf8')) as { seq: number };
  assert.equal(position.seq, 5);
  writeFileSync(positionPath, JSON.stringify({ ...position, seq: 1 }));

  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20, blockEvents: BLOCK });
  defer(() => store.close());
  assert.throws(() => store.atSeq(4), /damaged block/, 'the block cannot be read');
  return {
    store,
    defer,
    dir,
    get cluster() {
      return cluster;
    },
    /** Removes the stream and makes it again (an empty one, created later): another cluster's stream of the same name. */
    async remakeStream() {
      await cluster.jsm.streams.delete(cluster.streamName);
      await cluster.nc.close();
      cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
    },
  };
}

test('a node re-reading batches whose events lie in a damaged block of its buffer passes them over and goes on following', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const base = 1_800_000_000_000_000;
  const node = await nodeWithDamagedBlock(t, base);
  const follower = new StreamFollower(node.cluster, node.store, node.dir.path, logger);
  node.defer(() => follower.stop());
  await follower.start();
  const outcome = await within(10_000, Promise.race([follower.waitApplied(5).then(() => 'applied' as const), follower.failed]));
  assert.equal(outcome, 'applied', `the re-read batches are passed over and the follower goes on (${outcome instanceof Error ? `it stopped: ${outcome.message}` : outcome})`);
  assert.equal(follower.caughtUp, true, 'and it says it caught up');
  // What the stream appends next reaches the buffer.
  const writer = new StreamWriter(node.cluster.nc, node.cluster.js, node.cluster.jsm, node.cluster.streamName, node.cluster.subject, 'b', () => {});
  await writer.fence();
  const next = await writer.append(batchFrom(17, base));
  assert.equal(await within(5_000, follower.waitApplied(next)), undefined);
  assert.equal(node.store.lastSeq, 20);
});

test('a batch whose time_us lies outside the damaged block holding its seq stops the follower, as another cluster\'s buffer', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const base = 1_800_000_000_000_000;
  const node = await nodeWithDamagedBlock(t, base);
  // Another cluster's stream of this name: the same seqs, other time_us (a day later).
  await node.remakeStream();
  await fill(node.cluster, 4, base + 86_400_000_000);
  const follower = new StreamFollower(node.cluster, node.store, node.dir.path, logger);
  node.defer(() => follower.stop());
  await follower.start();
  const outcome = await within(10_000, Promise.race([follower.waitApplied(5).then(() => 'applied' as const), follower.failed]));
  assert.ok(outcome instanceof Error, `the follower stops (${String(outcome)})`);
  assert.match(outcome.message, /holds events that were not read from this cluster's stream/);
  assert.match(outcome.message, /damaged block/, 'saying the seq lies in a damaged block of other time_us');
});
