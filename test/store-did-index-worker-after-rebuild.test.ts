/**
 * Review (session 14): a replay worker's SnapshotReader that met a corrupt per-DID index entry
 * reads by scans "until its snapshot says the EventStore knows" — it forgets what it met only
 * when a read of its own sees the mark the EventStore sets while it rebuilds the index. A worker
 * with no DID-filtered read during the rebuild (its replay ended; the rebuild of a small buffer
 * is done within a turn or two) never sees the mark, and scans every block for every DID replay
 * it serves from then on, until the gateway restarts, the index long rebuilt and in use by the
 * main thread.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { pino } from 'pino';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { texts } from './support/store-reads.ts';

const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'w')}`);
const stream: Entry[] = Array.from({ length: 3_000 }, (_, i) => {
  const timeUs = 1_000_000 + i * 7;
  const did = dids[(i * 7919) % dids.length]!;
  return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
});
const target = stream[1_234]!.did;

/** A buffer of `stream` (blocks of 100) whose posting for stream[1_234] names stream[1_235], another repo's event. */
async function corruptBuffer(path: string): Promise<void> {
  const store = new EventStore({ dataDir: path, hotLogBytes: 0, blockEvents: 100 });
  await store.commit({ entries: stream, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path, maxDbs: 16 });
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const key = didHash(target);
  const value = [...byDid.getValues(key)].find((v) => v.readUInt32BE(4) === stream[1_234]!.timeUs)!;
  const wrong = Buffer.from(value);
  wrong.writeUInt32BE(stream[1_235]!.timeUs, 4);
  byDid.removeSync(key, value);
  byDid.putSync(key, wrong);
  await raw.close();
}

test('a replay worker that found the per-DID index inconsistent reads through it again once it is rebuilt, whether or not it read while it was rebuilt', async (t) => {
  const dir = tempDir('contrail-index-worker-after-');
  t.after(() => dir.remove());
  await corruptBuffer(dir.path);
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger: pino({ level: 'silent' }) });
  t.after(() => store.close());
  const select = { dids: new Set([target]), collections: new Set<string>(), prefixes: [] };
  const expected = texts(stream.filter((e) => e.did === target));
  /** One DID replay of the whole buffer in one read; the block partitions it decompressed (no cache: each read counts its own). */
  const replay = (reader: SnapshotReader) => {
    const before = reader.partitionsRead;
    const read = reader.read(0, store.lastTimeUs, { maxEntries: 10_000, select, filter: (e) => e.did === target, ...store.indexState });
    assert.ok(!read.trimmed);
    assert.deepEqual(texts(read.entries), expected);
    return { partitions: reader.partitionsRead - before, inconsistency: read.inconsistency };
  };

  // A worker's replay meets the corrupt entry, and the EventStore is told (as replay-reads.ts does).
  const worker = new SnapshotReader(store.location, 0);
  t.after(() => worker.close());
  const found = replay(worker);
  assert.match(found.inconsistency ?? '', /event of another DID|under two DID hashes/);
  store.reportDidIndexInconsistent(found.inconsistency!);
  // The worker's replay ended there; the index is rebuilt meanwhile.
  await waitUntil(() => store.didIndex.state === 'ok', 'the index rebuilt');

  const fresh = new SnapshotReader(store.location, 0);
  t.after(() => fresh.close());
  const throughIndex = replay(fresh).partitions;
  const scan = replay(worker).partitions;
  assert.ok(
    scan <= throughIndex,
    `the worker's next DID replay decompressed ${scan} block partitions, a worker that never met the entry ${throughIndex}: it still scans every block, the index rebuilt and in use`,
  );
});
