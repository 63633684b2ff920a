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
import { pino } from 'pino';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { corruptBuffer, stream, target } from './support/corrupt-did-index.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { texts } from './support/store-reads.ts';

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
