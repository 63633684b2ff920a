/**
 * A per-DID index rebuild that meets a block frame LMDB cannot find (MDB_PAGE_NOTFOUND: the value's
 * overflow pages point past the file, as a damaged page would) leaves that block alone out of the
 * index, as a gap, said once. LMDB marks the read transaction it failed in, and every later read in
 * it fails with MDB_BAD_TXN: the rebuild must renew it before reading the next block, else it takes
 * each sound block it reads in the same turn for a damaged one — an error line for each, and a gap
 * kept in the buffer's meta, so DID-filtered replays read those blocks whole until retention
 * removes them. Found in session 20: the rebuild of 6 blocks named the 4 after the damaged one
 * damaged too (MDB_BAD_TXN).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { pointValuePastFile } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';
import { texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const BUNDLED = readFileSync(fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url)));
/** Blocks of 1,024 events: each frame lies on overflow pages, which pointValuePastFile points elsewhere. */
const BLOCK = 1_024;
/** Fewer than a rebuild's group of eight: the blocks after the damaged one are read in the transaction LMDB failed, unless it is renewed. */
const BLOCKS = 6;
/** One event in a hundred: few enough for its replays to go through the index (up to 1/64 of the events). */
const REPO = 'did:plc:repo';
const events: Entry[] = Array.from({ length: BLOCKS * BLOCK + 10 }, (_, i) => {
  const timeUs = 1_000_000 + i * 10;
  const did = i % 100 === 0 ? REPO : `did:plc:other${i % 13}`;
  return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
});
/** The second block: its frame's pages are not found. */
const damaged = { first: events[BLOCK]!.timeUs, end: events[2 * BLOCK - 1]!.timeUs };

test('a per-DID index rebuild that meets a frame LMDB cannot find (MDB_PAGE_NOTFOUND) leaves that block alone out of the index, and reads the blocks after it', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-rebuild-page-notfound-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  let store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED });
  await store.commit({ entries: events, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  const frame = Buffer.from(raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' }).getBinary([damaged.end, 1])!);
  // Marked inconsistent: the start rebuilds the index.
  raw.openDB<unknown, string>({ name: 'meta' }).putSync('didIndexBroken', true);
  await raw.close();
  pointValuePastFile(dataDir, pageSize, frame);

  const lines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];
  const logger = capturingLogger(lines, 'info');
  const open = () => new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED, logger });
  store = open();
  defer(() => store.close());
  await waitUntil(() => store.didIndex.state !== 'rebuilding', 'the rebuild to end', 60_000);
  assert.equal(store.didIndex.state, 'ok', 'the rebuild finished');
  const errors = lines.filter((l) => l.level >= 50);
  assert.deepEqual(
    errors.map((l) => [l.first, l.end]),
    [[damaged.first, damaged.end]],
    `one error line, naming the damaged block alone: ${JSON.stringify(errors)}`,
  );
  assert.match(String(errors[0]!.err), /MDB_PAGE_NOTFOUND/);

  // The repo's replay from after the damaged block goes through the index, every block of it.
  const after = events.filter((e) => e.timeUs > damaged.end && e.did === REPO);
  const indexReads = store.readPlans.didIndex;
  const partitions = store.partitionsRead;
  const select = { dids: new Set([REPO]), collections: new Set<string>(), prefixes: [] };
  const read = store.readAfter(damaged.end, { maxEntries: after.length + 1, select, filter: (e) => e.did === REPO });
  assert.deepEqual(texts(read.entries), texts(after), "the repo's events after the damaged block");
  assert.ok(store.readPlans.didIndex > indexReads, 'read through the index');
  assert.equal(store.partitionsRead - partitions, BLOCKS - 2, 'each block after the damaged one is read once, by its index entries');

  // The gap kept for later starts is the damaged block's alone.
  await store.close();
  const meta = openLmdb({ path: dataDir, maxDbs: 16, readOnly: true });
  assert.deepEqual(meta.openDB<unknown, string>({ name: 'meta' }).get('didIndexGaps'), [[damaged.first, damaged.end]], "the buffer's meta keeps the damaged block alone as the index's gap");
  await meta.close();
  store = open();
  assert.equal(store.didIndex.state, 'ok', 'a restart does not rebuild it again');
});
