/**
 * Review (session 18): a node that restarts re-reads from its saved position (saved about once a
 * second) the batches it had applied since, and checks each against its buffer (`atSeq`: the event
 * at the batch's last seq must have its time_us). Those are the newest events, not sealed yet: the
 * tail, whose runs carry a CRC-32 since this session (tail-runs.ts). A run whose bytes changed on
 * disk is kept out of the tail at start and its events named lost (a DamagedBlockError to every
 * reader), as a damaged block's are; the follower passes over a batch in a damaged block
 * (follower-damaged-block.test.ts), but a batch in a damaged run found no event under its seq and
 * was taken for another cluster's: the node stopped for good, saying its buffer holds events this
 * stream did not write. It must pass the batch over and go on, as for a damaged block.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { within } from '../support/poll.ts';
import { identityBatch } from '../support/store-reads.ts';

const DID = 'did:plc:damagedtailrundamagedtailr';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'follower-damaged-tail', nodeId: 'a' };
const PER_BATCH = 4;
/** Far more than the test's events: every one stays in the tail. */
const BLOCK = 1_000;
const logger = pino({ level: 'silent' });

/** The batch of PER_BATCH identity events from seq `first` on, at time_us `base` + seq. */
const batchFrom = (first: number, base: number) => identityBatch(DID, first, PER_BATCH, base);

/** Changes a byte in the middle of the tail run keyed `key`, wherever it lies in data.mdb (older copies too). */
async function damageRun(dataDir: string, key: number): Promise<void> {
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const run = Buffer.from(raw.openDB<Buffer, number>({ name: 'tail', encoding: 'binary' }).getBinary(key)!);
  await raw.close();
  const file = readFileSync(join(dataDir, 'data.mdb'));
  let at = file.indexOf(run);
  assert.ok(at > 0, 'the run lies in data.mdb');
  for (; at >= 0; at = file.indexOf(run, at + 1)) file[at + (run.length >> 1)]! ^= 0x5a;
  writeFileSync(join(dataDir, 'data.mdb'), file);
}

test('a node re-reading batches whose events lie in a damaged tail run of its buffer passes them over and goes on following', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const base = 1_800_000_000_000_000;
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-follower-damaged-tail-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  defer(() => cluster.nc.close());

  // Four batches applied (stream seqs 2-5 after the marker), each a tail run keyed by its newest time_us.
  const applying = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20, blockEvents: BLOCK });
  const first = new StreamFollower(cluster, applying, dir.path, logger);
  let firstStopped = false;
  defer(async () => {
    if (firstStopped) return;
    await first.stop();
    await applying.close();
  });
  await first.start();
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await writer.fence();
  for (let i = 0; i < 4; i++) await writer.append(batchFrom(1 + i * PER_BATCH, base));
  assert.equal(await within(10_000, first.waitApplied(5)), undefined);
  await first.stop();
  const held = { events: applying.lastSeq, sealed: applying.indexState.sealedEvents };
  await applying.close();
  firstStopped = true;
  assert.deepEqual(held, { events: 16, sealed: 0 }, 'the buffer holds the four batches, none of them sealed');

  // The first batch's run is damaged on disk, and the saved position is rewound to the marker, as a
  // crash a second after the batches leaves it: the batches are read again and checked.
  await damageRun(dataDir, base + PER_BATCH);
  const positionPath = join(dir.path, 'cluster-position.json');
  const position = JSON.parse(readFileSync(positionPath, 'utf8')) as { seq: number };
  writeFileSync(positionPath, JSON.stringify({ ...position, seq: 1 }));

  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20, blockEvents: BLOCK });
  defer(() => store.close());
  assert.throws(() => store.readAfter(0, { maxEntries: 100 }), /failed its checksum/, 'the run is read as lost events');

  const follower = new StreamFollower(cluster, store, dir.path, logger);
  defer(() => follower.stop());
  await follower.start();
  const outcome = await within(10_000, Promise.race([follower.waitApplied(5).then(() => 'applied' as const), follower.failed]));
  assert.equal(outcome, 'applied', `the re-read batches are passed over and the follower goes on (${outcome instanceof Error ? `it stopped: ${outcome.message}` : outcome})`);
  // What the stream appends next reaches the buffer.
  const next = await writer.append(batchFrom(17, base));
  assert.equal(await within(5_000, follower.waitApplied(next)), undefined);
  assert.equal(store.lastSeq, 20);
});
