/**
 * The replay workers' default: none on two cores or fewer (measured worse there), else a worker per
 * core but the main thread's; and a replay's reads stay on one thread (which keeps the blocks merged
 * ahead of it) unless that thread is much busier; each thread reports its OS thread id.
 */
import { readdirSync, readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { tempDir } from '../../test/support/gateway.ts';
import { waitUntil } from '../../test/support/poll.ts';
import { EventStore } from '../store/index.ts';
import { EventCompressor } from './compression.ts';
import { parseFilter } from './filter.ts';
import { defaultReplayWorkers, filterSpecJson, ReplayPool, type ReplayRequest } from './replay-pool.ts';

/** A ReplayPool of two threads, ready, over an empty buffer in a temp dir; all of it closed after the test. */
async function twoWorkersOnEmptyBuffer(t: TestContext): Promise<{ store: EventStore; pool: ReplayPool }> {
  const dir = tempDir('contrail-replay-pool-');
  t.after(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  const compressor = new EventCompressor(readFileSync(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname));
  const pool = new ReplayPool(2, { location: store.location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level, replayLevel: compressor.replayLevel, lowerPriority: false }, pino({ level: 'silent' }));
  t.after(async () => {
    await pool.close();
    await store.close();
  });
  await pool.ready();
  return { store, pool };
}

test('--replay-workers defaults to 0 on one or two cores, and to cores − 1 on more', () => {
  assert.deepEqual([1, 2, 3, 4, 16].map((cores) => defaultReplayWorkers(cores)), [0, 0, 2, 3, 15]);
});

test("a replay's reads go to its own worker thread, not to whichever is least busy", async (t) => {
  const { store, pool } = await twoWorkersOnEmptyBuffer(t);
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

test("each started worker thread reports its OS thread id: a thread of this process, not the main thread, the one that runs that worker's reads (bench/replay-full reads each one's CPU by it)", { skip: process.platform !== 'linux' && 'no /proc' }, async (t) => {
  const { store, pool } = await twoWorkersOnEmptyBuffer(t);
  const tids = pool.threadIds();
  assert.equal(new Set(tids).size, 2, `two distinct thread ids (${tids.join(', ')})`);
  const threadsOfThisProcess = readdirSync('/proc/self/task').map(Number);
  for (const tid of tids) {
    assert.notEqual(tid, process.pid, 'not the main thread');
    assert.ok(threadsOfThisProcess.includes(tid), `${tid} is a thread of this process`);
  }
  // Another thread of the process (one of libuv's, say) would pass the checks above: the thread
  // named must be the one that runs when its worker answers. A replay's reads go to thread
  // reader % 2, one at a time (the test above), so each thread in turn does all the reading.
  const { sealedEvents, didIndexUsable } = store.indexState;
  const filter = filterSpecJson(parseFilter({}));
  const onCpuNs = (tid: number) => Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  for (const [slot, tid] of tids.entries()) {
    const before = onCpuNs(tid);
    for (let i = 0; i < 50; i++) {
      await pool.read({ position: 0, end: 0, filter, wire: { name: 'v1', zstd: false }, limits: { maxEntries: 8, maxScanned: 8, maxBytes: 4_096 }, reader: slot, sealedEvents, didIndexUsable });
    }
    assert.ok(onCpuNs(tid) > before, `thread ${tid} ran while worker ${slot} answered 50 reads`);
  }
});

test('a worker thread told that a replay is done keeps no merged blocks for it', async (t) => {
  const dir = tempDir('contrail-replay-pool-');
  t.after(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 64, fsync: false });
  const compressor = new EventCompressor(readFileSync(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname));
  const pool = new ReplayPool(1, { location: store.location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level, replayLevel: compressor.replayLevel, lowerPriority: false }, pino({ level: 'silent' }));
  t.after(async () => {
    await pool.close();
    await store.close();
  });
  const did = 'did:plc:replaypooltest0000000000';
  const timeUs = Array.from({ length: 64 * 12 }, (_, i) => 1_000_000 + 2 * i);
  for (let i = 0; i < timeUs.length; i += 64) {
    // Two collections, so a block has two partitions and a whole block's read is a merge.
    const entries = timeUs.slice(i, i + 64).map((t) => ({ timeUs: t, did, kind: 'commit' as const, collection: t % 4 ? 'app.bsky.feed.like' : 'app.bsky.feed.post', json: Buffer.from(`{"did":"${did}","time_us":${t},"kind":"commit"}`) }));
    await store.commit({ entries, revs: new Map() });
  }
  await waitUntil(() => store.sealState.unsealedEvents < 64, 'the events sealed into blocks');
  await pool.ready();
  const filter = filterSpecJson(parseFilter({}));
  const end = timeUs.at(-1)!;
  const read = async (position: number, maxEntries: number, reader?: number) => {
    const { sealedEvents, didIndexUsable } = store.indexState;
    const reply = await pool.read({ position, end, filter, wire: { name: 'v1', zstd: false }, limits: { maxEntries, maxScanned: 10_000, maxBytes: 1 << 20 }, reader, sealedEvents, didIndexUsable });
    assert.ok('records' in reply);
    return reply;
  };
  await read(0, 1, 3); // replay 3 waits in the first block …
  for (let position = 0; position < end; ) position = (await read(position, 40, 4)).position; // … while replay 4 reads past it
  const blockFive = timeUs[64 * 5]! - 1;
  const kept = await read(blockFive, 1);
  assert.equal((await read(blockFive, 1)).partitionsRead, kept.partitionsRead, "block 5's merge is kept for replay 3");

  pool.readerDone(3);
  pool.readerDone(4);
  assert.ok((await read(blockFive, 1)).partitionsRead > kept.partitionsRead, 'block 5 was decompressed again: nothing kept it once both replays were done');
});
