/**
 * The replay workers' default: none on two cores or fewer (measured worse there), else a worker per
 * core but the main thread's; and a replay's reads stay on one thread (which keeps the blocks merged
 * ahead of it) unless that thread is much busier.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { tempDir } from '../../test/support/gateway.ts';
import { EventStore } from '../store/index.ts';
import { EventCompressor } from './compression.ts';
import { parseFilter } from './filter.ts';
import { defaultReplayWorkers, filterSpecJson, ReplayPool, type ReplayRequest } from './replay-pool.ts';

test('--replay-workers defaults to 0 on one or two cores, and to cores − 1 on more', () => {
  assert.deepEqual([1, 2, 3, 4, 16].map((cores) => defaultReplayWorkers(cores)), [0, 0, 2, 3, 15]);
});

test("a replay's reads go to its own worker thread, not to whichever is least busy", async (t) => {
  const dir = tempDir('contrail-replay-pool-');
  t.after(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  const compressor = EventCompressor.fromFile(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname);
  const pool = new ReplayPool(2, { location: store.location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level }, pino({ level: 'silent' }));
  t.after(async () => {
    await pool.close();
    await store.close();
  });
  await pool.ready();
  /** The readers each thread was sent reads for, in order. */
  const readersOf = pool.threads().map((thread) => {
    const readers: (number | undefined)[] = [];
    const post = thread.postMessage.bind(thread);
    thread.postMessage = (message: ReplayRequest, ...rest) => {
      readers.push(message.reader);
      post(message, ...rest);
    };
    return readers;
  });
  const { sealedEvents, didIndexUsable } = store.indexState;
  const filter = filterSpecJson(parseFilter({}));
  const read = (reader?: number) =>
    pool.read({ position: 0, end: 0, filter, wire: { name: 'v1', zstd: false }, limits: { maxEntries: 8, maxScanned: 8, maxBytes: 4_096 }, reader, sealedEvents, didIndexUsable });
  // One at a time, so both threads are always equally idle.
  for (const reader of [7, 8, 7, 8, 7, undefined]) await read(reader);
  assert.deepEqual(readersOf, [[8, 8, undefined], [7, 7, 7]]);
});
