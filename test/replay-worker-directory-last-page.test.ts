/**
 * A replay worker reads where the sealed blocks end (the block directory's newest key) at the start
 * of every read; the main thread keeps it in memory. With the directory's last page damaged on disk
 * (LMDB refuses it: MDB_CORRUPTED), every worker read failed there, even of blocks on the
 * directory's sound pages, and the main thread read every batch of every replay itself: the
 * workers were lost to replays without a word. A worker's read of the sound blocks must be served,
 * saying what LMDB refused on the way.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { pino, type Logger } from 'pino';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { blockStream, BUNDLED_DICTIONARY } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';
import { replayReadsRig } from './support/replay-reads-rig.ts';
import { texts } from './support/store-reads.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';

/** Small blocks, so that the directory spans several leaf pages. */
const BLOCK_EVENTS = 16;
const EVENTS = 4_000;

/**
 * A buffer of small blocks written and closed, then a store opened on it; the directory's page
 * holding its newest key is then broken in place. `trimmedBefore`: retention first removed the
 * blocks older than the event at that index.
 */
async function storeWithDirectoryLastPageBroken(t: TestContext, logger: Logger, trimmedBefore?: number) {
  const defer = cleanup(t);
  const dir = tempDir('contrail-worker-directory-last-page-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const events = blockStream(4).slice(0, EVENTS);
  const writer = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, blockEvents: BLOCK_EVENTS });
  await writer.commit({ entries: events, revs: new Map() });
  if (trimmedBefore !== undefined) assert.ok((await writer.trimBefore(events[trimmedBefore]!.timeUs, EVENTS)) > 0, 'retention removed the oldest blocks');
  await writer.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  const directory = raw.openDB<unknown, Buffer>({ name: 'directory', keyEncoding: 'binary' });
  const newestKey = Buffer.from([...directory.getKeys({ reverse: true, limit: 1 })][0]!);
  const { entryCount, treeLeafPageCount: leafPages } = directory.getStats() as { entryCount: number; treeLeafPageCount: number };
  await raw.close();
  assert.ok(leafPages >= 3, `the directory spans several leaf pages (${entryCount} blocks on ${leafPages})`);

  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, blockEvents: BLOCK_EVENTS, logger });
  defer(() => store.close());
  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, newestKey) > 0, "the directory's last page is broken");
  return { defer, events, store };
}

test("a replay worker's read of blocks on the block directory's sound pages is served while its last page cannot be read, saying so", { timeout: 60_000 }, async (t) => {
  const { defer, events, store } = await storeWithDirectoryLastPageBroken(t, pino({ level: 'silent' }));
  const worker = new SnapshotReader(store.location, 0);
  defer(() => worker.close());
  const workerRead = (position: number) => worker.read(position, store.lastTimeUs, { maxEntries: 100, ...store.indexState });

  assert.deepEqual(texts(store.readAfter(0, { maxEntries: 100 }).entries), texts(events.slice(0, 100)), 'the main thread reads the first blocks');
  for (const [position, from] of [
    [0, 0],
    [events[1_000]!.timeUs, 1_001],
  ] as const) {
    const read = workerRead(position);
    assert.ok(!read.trimmed);
    assert.deepEqual(texts(read.entries), texts(events.slice(from, from + 100)), `the worker reads them too, after event ${from}`);
    assert.ok('refused' in read && /MDB_CORRUPTED/.test(String(read.refused)), "and says what LMDB refused on the way, with its reason");
  }
});

test("what a replay worker read around (the directory's last page) is said once per reason and each counted, its batches its own", { timeout: 60_000 }, async (t) => {
  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const { defer, events, store } = await storeWithDirectoryLastPageBroken(t, logger);
  const { subscriberAt, nextBatch, pool, readsAhead } = await replayReadsRig(defer, store, logger);
  for (const subscriber of [subscriberAt(0, true), subscriberAt(events[1_000]!.timeUs, true)]) {
    const batch = await nextBatch(subscriber);
    assert.ok(batch.entries.length > 0 && batch.frames?.length === batch.entries.length, "read by the worker: a compressed subscriber's frames are made there");
  }
  // Their answers say what they read around too: said once counts them.
  await waitUntil(() => pool.pendingReads === 0, 'the reads asked ahead answered');
  const said = lines.filter((line) => line.level >= 50 && /replay worker/.test(line.msg));
  assert.equal(said.length, 1, `said once: ${JSON.stringify(lines)}`);
  assert.match(String(said[0]!.err), /MDB_CORRUPTED/, "with LMDB's reason");
  // Every worker read, the first two and those asked ahead, starts at the directory's newest key, on the broken page.
  assert.equal(store.workerUnreadableReads, 2 + readsAhead(), 'each read counted, those asked ahead too');
});

test("what a replay worker read around is said and counted when its answer is that retention removed the events asked for", { timeout: 60_000 }, async (t) => {
  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const { defer, events, store } = await storeWithDirectoryLastPageBroken(t, logger, 100);
  const { subscriberAt, answerTo } = await replayReadsRig(defer, store, logger);
  assert.equal(await answerTo(subscriberAt(events[10]!.timeUs)), 'trimmed', "the worker's answer: retention removed the events after the position");
  const said = lines.filter((line) => line.level >= 50 && /replay worker/.test(line.msg));
  assert.equal(said.length, 1, `what it read around is said: ${JSON.stringify(lines)}`);
  assert.match(String(said[0]!.err), /MDB_CORRUPTED/, "with LMDB's reason");
  assert.equal(store.workerUnreadableReads, 1, 'and counted');
});

test("what a replay worker read around is said and counted when its read then fails as a fault (its snapshot older than the request)", { timeout: 60_000 }, async (t) => {
  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const defer = cleanup(t);
  const dir = tempDir('contrail-worker-directory-last-page-fault-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const olderDir = join(dir.path, 'older');
  const events = blockStream(4).slice(0, EVENTS);
  const writer = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, blockEvents: BLOCK_EVENTS });
  await writer.commit({ entries: events.slice(0, EVENTS - 100), revs: new Map() });
  await writer.close();
  // The worker reads an older copy (its snapshot ends before every request), whose directory's last page LMDB refuses.
  mkdirSync(olderDir);
  copyFileSync(join(dataDir, 'data.mdb'), join(olderDir, 'data.mdb'));
  const raw = openLmdb({ path: olderDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  const newestKey = Buffer.from([...raw.openDB<unknown, Buffer>({ name: 'directory', keyEncoding: 'binary' }).getKeys({ reverse: true, limit: 1 })][0]!);
  await raw.close();
  assert.ok(breakLeafPagesInPlace(olderDir, pageSize, newestKey) > 0, "the older copy's directory's last page is broken");

  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, blockEvents: BLOCK_EVENTS, logger });
  defer(() => store.close());
  await store.commit({ entries: events.slice(EVENTS - 100), revs: new Map() });
  const { subscriberAt, nextBatch } = await replayReadsRig(defer, store, logger, { ...store.location, dataDir: olderDir });
  const batch = await nextBatch(subscriberAt(events[10]!.timeUs));
  assert.deepEqual(texts(batch.entries), texts(events.slice(11, 11 + batch.entries.length)), 'the main thread reads the batch');
  assert.ok(batch.entries.length > 0, 'a batch');
  const workerLines = lines.filter((line) => line.level >= 40 && /replay worker/.test(line.msg));
  assert.ok(
    workerLines.some((line) => /older than the request/.test(String(line.err))),
    `the fault is said: ${JSON.stringify(workerLines)}`,
  );
  const refusals = workerLines.filter((line) => /MDB_CORRUPTED/.test(String(line.err)));
  assert.equal(refusals.length, 1, `what the worker read around is said once: ${JSON.stringify(workerLines)}`);
  assert.equal(store.workerUnreadableReads, 1, 'and counted once: the fault is not');
});
