/**
 * A per-DID index rebuilt while a block of the buffer is damaged on disk (a byte of its likes'
 * zstd frame flipped, as a bad sector would) cannot read that partition's events, so it cannot
 * give them index entries. The rebuild must still finish, saying which events have none and why,
 * and DID-filtered replays, through the index again, must end at that block with the
 * DamagedBlockError an unfiltered replay ends with, after the same events before it — never pass
 * over it as if the DID had no events there — on the main thread and on a replay worker's
 * snapshot, and after a restart. Read past it, they go on through the index; with a collection
 * filter that leaves the damaged partition out, they read the block as a scan does. Found by
 * review (session 17): the rebuild failed at the block, and DID replays scanned the whole buffer
 * until retention removed it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { DamagedBlockError, EventStore, SnapshotReader, type Selection } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { damagePartition } from './support/damaged-block.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { quietRepoEvents } from './support/quiet-repos.ts';
import { type ReadPath, replayUntilError, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const LIKE = 'app.bsky.feed.like';
const POST = 'app.bsky.feed.post';
const BLOCK = 100;
const events = quietRepoEvents('g');
/** The second block, events 100 to 199: its likes' frame is damaged. */
const damaged = { first: events[BLOCK]!.timeUs, end: events[2 * BLOCK - 1]!.timeUs };
/** A repo with a like in the damaged block (event 102), and events before and after it. */
const target = events[BLOCK + 2]!.did;

const selection = (collections: string[] = []): Selection => ({ dids: new Set([target]), collections: new Set(collections), prefixes: [] });
const wanted = (select: Selection | undefined) => (e: Entry) =>
  !select || ((select.dids.size === 0 || select.dids.has(e.did)) && (select.collections.size === 0 || select.collections.has(e.collection!)));

function assertEndsAtDamage(result: { entries: Entry[]; err?: unknown }, expected: Entry[], what: string): void {
  assert.deepEqual(texts(result.entries), texts(expected), `${what}: the events before the damaged block`);
  assert.ok(result.err instanceof DamagedBlockError, `${what}: ends with a DamagedBlockError, not ${result.err}`);
  assert.deepEqual([result.err.first, result.err.end], [damaged.first, damaged.end], `${what}: naming the damaged block`);
}

test('a per-DID index rebuilt past a block damaged on disk finishes, says which events have no entries, and DID replays end at that block as unfiltered ones do', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-rebuild-damaged-');
  defer(() => dir.remove());
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK, fsync: false });
  await store.commit({ entries: events, revs: new Map() });
  await store.close();
  await damagePartition(dir.path, damaged.end, LIKE);
  // The index found inconsistent, and the process stopped before its rebuild was done: the start rebuilds it.
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  raw.openDB<unknown, string>({ name: 'meta' }).putSync('didIndexBroken', true);
  await raw.close();

  const lines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];
  const logger = capturingLogger(lines, 'info');
  const open = () => new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK, fsync: false, logger });
  store = open();
  defer(() => store.close());
  await waitUntil(() => store.didIndex.state !== 'rebuilding', 'the rebuild to end', 60_000);
  assert.equal(store.didIndex.state, 'ok', `the rebuild finished: ${JSON.stringify(lines.filter((l) => l.level >= 50))}`);
  const said = lines.filter((l) => l.level === 50 && l.first === damaged.first && l.end === damaged.end && /per-DID index/.test(l.msg));
  assert.equal(said.length, 1, `one error line names the events without index entries: ${JSON.stringify(lines.filter((l) => l.level >= 40))}`);
  assert.match(said[0]!.msg, /damaged/, 'and why');

  const before = events.filter((e) => e.timeUs < damaged.first);
  const after = events.filter((e) => e.timeUs > damaged.end);
  const ofTarget = (list: Entry[], select = selection()) => list.filter(wanted(select));
  const onMain: ReadPath = (position, select) => store.readAfter(position, { maxEntries: 50, select, filter: wanted(select) });

  assertEndsAtDamage(replayUntilError(onMain, 0), before, 'an unfiltered replay');
  const indexReads = store.readPlans.didIndex;
  assertEndsAtDamage(replayUntilError(onMain, 0, selection()), ofTarget(before), "the DID's replay");
  assert.ok(store.readPlans.didIndex > indexReads, 'through the index');
  assert.deepEqual(texts(replayUntilError(onMain, damaged.end, selection()).entries), texts(ofTarget(after)), "past the block, the DID's replay reads on");
  const posts = selection([POST]);
  assert.deepEqual(texts(replayUntilError(onMain, 0, posts).entries), texts(ofTarget(events, posts)), "the DID's posts: the block's posts are read, as a scan reads them");

  const worker = new SnapshotReader(store.location, 0);
  defer(() => worker.close());
  const onWorker: ReadPath = (position, select) => {
    const read = worker.read(position, store.lastTimeUs, { maxEntries: 50, select, filter: wanted(select), ...store.indexState });
    assert.ok(!read.trimmed);
    assert.equal(read.inconsistency, undefined, 'the index is not taken for inconsistent');
    return read;
  };
  assertEndsAtDamage(replayUntilError(onWorker, 0, selection()), ofTarget(before), "a replay worker's replay of the DID");
  assert.deepEqual(texts(replayUntilError(onWorker, damaged.end, selection()).entries), texts(ofTarget(after)), "and past the block, a worker's reads on");

  await worker.close();
  await store.close();
  store = open();
  assert.equal(store.didIndex.state, 'ok', 'a restart does not rebuild it again');
  assertEndsAtDamage(replayUntilError(onMain, 0, selection()), ofTarget(before), "after a restart, the DID's replay");

  // Retention removes the damaged block: the index serves every DID replay whole again.
  await store.trimBefore(damaged.end + 1, 10 * BLOCK);
  assert.deepEqual(texts(replayUntilError(onMain, 0, selection()).entries), texts(ofTarget(after)), "once retention removed the block, the DID's replay is whole");
});
