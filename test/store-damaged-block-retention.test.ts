/**
 * Retention removing a block damaged on disk (a byte of one partition's zstd frame flipped, as a
 * bad sector would) cannot read that partition's events, so it cannot name their per-DID index
 * postings. Those postings are at or below trimmedUpTo, which no read of the index looks at: the
 * index is still right. The removal must leave it in use, without the full rebuild (which counts
 * toward the cap of 3 in 24 h) an inconsistency starts, now or at the next start, and say once
 * that a damaged block went.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { damagePartition } from './support/damaged-block.ts';
import { tempDir } from './support/gateway.ts';
import { quietRepoEvents } from './support/quiet-repos.ts';
import { readAll, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const LIKE = 'app.bsky.feed.like';
const BLOCK = 100;

test('retention removing a block damaged on disk leaves the per-DID index in use, with no rebuild now or at the next start, and says so once', { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-damaged-retention-');
  defer(() => dir.remove());
  const events = quietRepoEvents('c');
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK, fsync: false });
  await store.commit({ entries: events, revs: new Map() });
  await store.close();

  // The second block's likes: a byte of its frame flipped.
  const damagedEnd = events[2 * BLOCK - 1]!.timeUs;
  await damagePartition(dir.path, damagedEnd, LIKE);

  const lines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];
  const logger = capturingLogger(lines, 'info');
  const open = () => new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK, fsync: false, logger });
  store = open();
  defer(() => store.close());
  const removed = await store.trimBefore(events[2 * BLOCK]!.timeUs, 10 * BLOCK);
  assert.equal(removed, 2 * BLOCK, 'the two oldest blocks, the damaged one with them');

  assert.deepEqual(store.didIndex, { state: 'ok', inconsistencies: 0 }, 'the index stays in use');
  const said = lines.filter((l) => l.level >= 40);
  assert.equal(said.length, 1, `one line: ${JSON.stringify(said)}`);
  assert.equal(said[0]!.level, 50);
  assert.match(said[0]!.msg, /damaged block/);
  assert.equal(said[0]!.end, damagedEnd, 'naming the block');

  const did = events[2 * BLOCK]!.did;
  const expected = texts(events.slice(2 * BLOCK).filter((e) => e.did === did));
  const indexReads = store.readPlans.didIndex;
  assert.deepEqual(texts(readAll(store, { dids: [did] })), expected, "a DID's replay is exact");
  assert.ok(store.readPlans.didIndex > indexReads, 'and reads through the index');

  await store.close();
  store = open();
  assert.equal(store.didIndex.state, 'ok', 'the next start does not rebuild it');
  assert.equal(lines.filter((l) => /^rebuilding the per-DID index/.test(l.msg)).length, 0, 'no rebuild at all');
});
