/**
 * A per-DID index posting whose time_us names another repo's event (as a flipped bit in its
 * time_us can make it) is found out by the read that meets it: the event read through the posting
 * is not of a DID with the posting's hash. Like any index entry that contradicts the blocks
 * (store-bad-input.test.ts corrupts a partition number instead), the read says so in an error log
 * line and starts over, scanning the blocks — the DID's own event that the posting no longer names
 * may come before others of the DID it had already read — so the replay stays exact; the index is
 * bypassed while it is rebuilt, at once, in the background. On both read paths (the EventStore's, and a
 * SnapshotReader's, as replay workers read), with one wanted DID or two, the other being the repo
 * whose event the posting names. Found by audit: the read took the other repo's event, the exact
 * filter dropped it, and the replay came out one event short with nothing logged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { readAll, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'z')}`);
const stream: Entry[] = Array.from({ length: 3_000 }, (_, i) => {
  const timeUs = 1_000_000 + i * 7;
  const did = dids[(i * 7919) % dids.length]!;
  return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
});
const target = stream[1_234]!.did;

/** A buffer of `stream` whose posting for the target's event stream[1_234] says the time_us of stream[named], another repo's. */
async function corruptBuffer(path: string, named: number): Promise<void> {
  const store = new EventStore({ dataDir: path, hotLogBytes: 0, blockEvents: 100 });
  await store.commit({ entries: stream, revs: new Map() });
  assert.deepEqual(texts(readAll(store, { dids: [target] })), texts(stream.filter((e) => e.did === target)));
  await store.close();
  const raw = openLmdb({ path, maxDbs: 16 });
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const key = didHash(target);
  let corrupted = 0;
  for (const value of [...byDid.getValues(key)]) {
    if (value.readUInt32BE(4) !== stream[1_234]!.timeUs) continue;
    const wrong = Buffer.from(value);
    wrong.writeUInt32BE(stream[named]!.timeUs, 4);
    byDid.removeSync(key, value);
    byDid.putSync(key, wrong);
    corrupted++;
  }
  assert.equal(corrupted, 1);
  assert.notEqual(stream[named]!.did, target);
  await raw.close();
}

const cases = [
  { named: 1_235, wanted: [target], what: 'the next event (same block), a replay of that DID' },
  // The read meets the wrong entry after two of the DID's events later than the one it hid: it starts over.
  { named: 1_835, wanted: [target], what: 'an event after two more of the DID\'s (another block), a replay of that DID' },
  // The other repo first: its own posting of the event comes first, and the wrong one is its duplicate.
  { named: 1_235, wanted: [stream[1_235]!.did, target], what: 'the next event, a replay of both repos' },
];

for (const { named, wanted, what } of cases) {
  test(`a per-DID index entry whose time_us names another repo's event, ${what}: stays exact, says the index is inconsistent, and rebuilds it in the background`, async (t) => {
    const dir = tempDir('contrail-index-time-');
    t.after(() => dir.remove());
    await corruptBuffer(dir.path, named);
    const expected = texts(stream.filter((e) => wanted.includes(e.did)));

    const lines: Array<{ level: number; msg: string }> = [];
    const logger = capturingLogger(lines, 'info');
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger });
    t.after(() => store.close());
    // A replay worker's read first: it reports the inconsistency for the EventStore to record.
    // No block cache: each read's partitionsRead counts what it decompressed.
    const reader = new SnapshotReader(store.location, 0);
    const select = { dids: new Set(wanted), collections: new Set<string>(), prefixes: [] };
    const fromWorker: Entry[] = [];
    let inconsistency: string | undefined;
    for (let position = 0; position < store.lastTimeUs; ) {
      const read = reader.read(position, store.lastTimeUs, { maxEntries: 100, select, filter: (e) => select.dids.has(e.did), ...store.indexState });
      assert.ok(!read.trimmed);
      fromWorker.push(...read.entries);
      inconsistency ??= read.inconsistency;
      position = read.position;
    }
    assert.deepEqual(texts(fromWorker), expected, `a worker's replay is exact despite the corrupt entry (it lost ${expected.length - fromWorker.length} of ${expected.length} events)`);
    assert.match(inconsistency ?? '', /event of another DID|under two DID hashes/, 'and reports why it bypassed the index');

    const before = store.readPlans.didIndex;
    const replayed = texts(readAll(store, { dids: wanted }));
    assert.ok(store.readPlans.didIndex > before, 'the replay used the index');
    assert.deepEqual(replayed, expected, `the replay is exact despite the corrupt entry (it lost ${expected.length - replayed.length} of ${expected.length} events)`);
    assert.equal(lines.filter((l) => l.level === 50 && /per-DID index is inconsistent/.test(l.msg)).length, 1, 'and says once what happened');

    await waitUntil(() => store.didIndex.state === 'ok', 'the index rebuilt');
    assert.ok(lines.some((l) => /rebuilt the per-DID index/.test(l.msg)), 'the rebuild says it is done');
    const rebuilt = store.readPlans.didIndex;
    assert.deepEqual(texts(readAll(store, { dids: wanted })), expected);
    assert.ok(store.readPlans.didIndex > rebuilt, 'and replays use it again');
    // The worker that found the entry reads through the rebuilt index again too: it decompresses
    // no more block partitions than a worker that never met the entry.
    const replay = (worker: SnapshotReader) => {
      const before = worker.partitionsRead;
      const read = worker.read(0, store.lastTimeUs, { maxEntries: 10_000, select, filter: (e) => select.dids.has(e.did), ...store.indexState });
      assert.ok(!read.trimmed);
      assert.deepEqual(texts(read.entries), expected);
      assert.equal(read.inconsistency, undefined);
      return worker.partitionsRead - before;
    };
    const fresh = new SnapshotReader(store.location, 0);
    const throughIndex = replay(fresh);
    const again = replay(reader);
    assert.ok(again <= throughIndex, `the worker that found the entry decompressed ${again} block partitions, one that never met it ${throughIndex}: it still scans`);
    await fresh.close();
    await reader.close();
    assert.equal(lines.filter((l) => /per-DID index is inconsistent/.test(l.msg)).length, 1, 'the rebuilt index is consistent');
  });
}
