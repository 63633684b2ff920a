/**
 * A replay worker reads the buffer through a SnapshotReader, in a read transaction it renews
 * before each read. A read LMDB refuses mid-range (a page damaged on disk: here the tail's, which
 * only a worker reads from LMDB, the main thread holding the tail in memory) fails, and the main
 * thread reads that batch itself. The worker's next reads must be served: lmdb-js left the failed
 * range's cursor open, holding the transaction LMDB marked failed, and renewed into it, so every
 * later read of that worker failed with MDB_BAD_TXN until a commit — on a quiet gateway every
 * replay's every batch read twice, the second time on the main thread.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { BLOCK, BUNDLED_DICTIONARY, writeBufferWithTail } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { texts } from './support/store-reads.ts';

/**
 * Two sealed blocks and half a block in the tail, written and closed (writeBufferWithTail); then a
 * store and a worker's reader opened on them.
 */
async function storeWithWorker(t: TestContext, prefix: string) {
  const defer = cleanup(t);
  const dir = tempDir(prefix);
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { events, pageSize, tailKey } = await writeBufferWithTail(dataDir);
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, logger: pino({ level: 'silent' }) });
  defer(() => store.close());
  const worker = new SnapshotReader(store.location, 0);
  defer(() => worker.close());
  return { dataDir, events, pageSize, tailKey, store, worker };
}

test("a replay worker's read that LMDB refuses fails alone: the worker's next reads, in the same turn, are served", async (t) => {
  const { dataDir, events, pageSize, tailKey, store, worker } = await storeWithWorker(t, 'contrail-worker-read-fails-');
  const read = (position: number) => {
    const answer = worker.read(position, store.lastTimeUs, { maxEntries: 100, ...store.indexState });
    assert.ok(!answer.trimmed);
    return texts(answer.entries);
  };
  const inTail = events[2 * BLOCK + 10]!.timeUs;
  assert.deepEqual(read(inTail), texts(events.slice(2 * BLOCK + 11, 2 * BLOCK + 111)), 'the tail, before its page broke');

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, tailKey) > 0, "the tail's page is broken");
  assert.throws(() => read(inTail), /MDB_CORRUPTED/, 'the read that reaches the broken page fails');
  assert.deepEqual(read(0), texts(events.slice(0, 100)), "the worker's next read, of the first block");
  assert.deepEqual(read(events[BLOCK + 4]!.timeUs), texts(events.slice(BLOCK + 5, BLOCK + 105)), 'and the one after, of the second');
  assert.deepEqual(texts(store.readAfter(inTail, { maxEntries: 100 }).entries), texts(events.slice(2 * BLOCK + 11, 2 * BLOCK + 111)), 'the main thread reads the tail from memory');
});

test("a replay worker's DID read whose index count LMDB refuses (a page of the per-DID index damaged on disk) fails alone: the worker's next reads are served", async (t) => {
  const { dataDir, events, pageSize, store, worker } = await storeWithWorker(t, 'contrail-worker-did-count-fails-');
  const repo = events[0]!.did;
  const read = (position: number, dids?: string[]) => {
    const select = dids ? { dids: new Set(dids), collections: new Set<string>(), prefixes: [] } : undefined;
    const answer = worker.read(position, store.lastTimeUs, { maxEntries: 100, ...(select ? { select, filter: (e) => dids!.includes(e.did) } : {}), ...store.indexState });
    assert.ok(!answer.trimmed);
    return texts(answer.entries);
  };

  // The leaf page holding the repo's index key: a DID read's plan counts its entries there first.
  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, didHash(repo)) > 0, "the index's page is broken");
  assert.throws(() => read(0, [repo]), /MDB_CORRUPTED|MDB_PAGE_NOTFOUND/, "the DID read that counts the repo's entries fails");
  assert.deepEqual(read(0), texts(events.slice(0, 100)), "the worker's next read, of the first block");
  assert.deepEqual(read(events[BLOCK + 4]!.timeUs), texts(events.slice(BLOCK + 5, BLOCK + 105)), 'and the one after, of the second');
});
