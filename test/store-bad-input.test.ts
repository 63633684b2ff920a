/**
 * The buffer under bad input and failure, on a real LMDB: a dictionary file that changed (or
 * was replaced) between runs, a corrupt per-DID index entry, a disk that fills up in the middle
 * of a transaction. (A buffer written by an older contrail: store.test.ts.) Each gets a defined
 * outcome: old blocks stay readable, the index is bypassed and rebuilt in the background, ingest stops without
 * losing what was committed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { readAll, texts } from './support/store-reads.ts';
import { waitUntil } from './support/poll.ts';
import { mulberry32 } from './support/synthetic.ts';
import { loggerKeepingLines } from './support/upstream-harness.ts';

const BUNDLED = readFileSync(fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url)));
const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow'];

function events(count: number, first: number, dids: readonly string[], seed = 1): Entry[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: count }, (_, i) => {
    const timeUs = first + i * 7;
    const did = dids[Math.floor(rnd() * dids.length)]!;
    const collection = COLLECTIONS[i % COLLECTIONS.length]!;
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"collection":"${collection}","noise":"${rnd().toString(36)}"}}`;
    return { timeUs, did, kind: 'commit', collection, json: Buffer.from(json) };
  });
}

test('a changed dictionary (another file, or new contents under the same zstd ID) never makes old blocks unreadable', async (t) => {
  const dir = tempDir('contrail-dict-');
  t.after(() => dir.remove());
  const dids = ['did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', 'did:plc:bbbbbbbbbbbbbbbbbbbbbbbb'];
  const first = events(300, 1_000_000, dids, 1);
  const second = events(300, 2_000_000, dids, 2);
  const third = events(300, 3_000_000, dids, 3);
  // The bundled dictionary with a byte of its content changed: same header, same zstd ID.
  const altered = Buffer.from(BUNDLED);
  altered[altered.length - 100]! ^= 0xff;

  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 50, dictionary: BUNDLED });
  await store.commit({ entries: first, revs: new Map() });
  await store.close();
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 50, dictionary: altered });
  await store.commit({ entries: second, revs: new Map() });
  await store.close();
  // A raw-content dictionary (any bytes; zstd ID 0).
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 50, dictionary: Buffer.from(texts(first.slice(0, 20)).join('')) });
  await store.commit({ entries: third, revs: new Map() });
  assert.deepEqual(texts(readAll(store)), texts([...first, ...second, ...third]));
  await store.close();

  // A reader with no dictionary at all (contrail inspect) still reads every block.
  const reader = new EventStore({ dataDir: dir.path, hotLogBytes: 0, readOnly: true });
  t.after(() => reader.close());
  assert.deepEqual(texts(readAll(reader)), texts([...first, ...second, ...third]));
  const raw = openLmdb({ path: dir.path, maxDbs: 16, readOnly: true });
  t.after(() => raw.close());
  assert.equal([...raw.openDB({ name: 'dictionaries' }).getKeys()].length, 3, 'the buffer holds each dictionary it used, once');
});

test('a corrupt per-DID index entry: the replay stays exact (it scans instead), says so, and the index is rebuilt in the background, begun again by a start before it was done', async (t) => {
  const dir = tempDir('contrail-index-');
  t.after(() => dir.remove());
  // Many quiet repos, so one DID's index range is selective enough to be used.
  const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'x')}`);
  const stream = events(3_000, 1_000_000, dids);
  const target = stream[1_234]!.did;
  const expected = texts(stream.filter((e) => e.did === target));
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100 });
  await store.commit({ entries: stream, revs: new Map() });
  assert.deepEqual(texts(readAll(store, { dids: [target] })), expected);
  assert.ok(store.readPlans.didIndex > 0, 'the replay used the index');
  await store.close();

  // Point one of the target's index entries at a partition its event is not in.
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  // The index's layout (did-keys.ts): DID hash → sorted 10-byte values, time_us then partition.
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const partitions = raw.openDB<number, string>({ name: 'partitions' });
  const ofTarget = stream.findIndex((e) => e.did === target && e.collection !== 'app.bsky.graph.follow');
  let corrupted = 0;
  for (const { key, value } of byDid.getRange()) {
    if (value.readUInt32BE(4) === stream[ofTarget]!.timeUs % 2 ** 32) {
      const wrong = Buffer.from(value);
      wrong.writeUInt16BE(partitions.get('app.bsky.graph.follow')! === 1 ? 2 : 1, 8);
      byDid.removeSync(key, value);
      byDid.putSync(key, wrong);
      corrupted++;
    }
  }
  assert.equal(corrupted, 1);
  await raw.close();

  const { logger, lines } = loggerKeepingLines();
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger });
  assert.deepEqual(texts(readAll(store, { dids: [target] })), expected, 'the replay is exact despite the corrupt entry');
  assert.ok(lines.some((l) => l.level === 50 && /per-DID index is inconsistent/.test(l.msg)), 'and says what happened');
  assert.deepEqual(store.didIndex, { state: 'rebuilding', inconsistencies: 1 }, 'the index is rebuilt at once, in the background');
  // Stopped before the rebuild's first step: the buffer stays marked, and the next start begins it again.
  await store.close();

  const reopened = loggerKeepingLines();
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger: reopened.logger });
  t.after(() => store.close());
  assert.deepEqual(store.didIndex, { state: 'rebuilding', inconsistencies: 0 }, 'the start does not wait for the rebuild');
  let before = store.readPlans.didIndex;
  assert.deepEqual(texts(readAll(store, { dids: [target] })), expected, 'DID replays meanwhile are exact');
  assert.equal(store.readPlans.didIndex, before, 'and scan');
  await waitUntil(() => store.didIndex.state === 'ok', 'the index rebuilt');
  assert.ok(reopened.lines.some((l) => /rebuilt the per-DID index/.test(l.msg)), 'the rebuild says it is done');
  before = store.readPlans.didIndex;
  assert.deepEqual(texts(readAll(store, { dids: [target] })), expected);
  assert.ok(store.readPlans.didIndex > before, 'and replays use it again');
  assert.equal(reopened.lines.filter((l) => /per-DID index is inconsistent/.test(l.msg)).length, 0, 'the rebuilt index is consistent');
});

test('a replay worker\'s read asked for before the index was found inconsistent, answered while it is rebuilt, scans: it is exact', async (t) => {
  const dir = tempDir('contrail-index-worker-');
  t.after(() => dir.remove());
  const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'w')}`);
  const stream = events(6_000, 1_000_000, dids);
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, fsync: false });
  t.after(() => store.close());
  await store.commit({ entries: stream, revs: new Map() });
  const reader = new SnapshotReader(store.location, 1 << 20);
  t.after(() => reader.close());
  // What a request sent before the inconsistency was found carries: the index usable.
  const asked = store.indexState;
  store.reportDidIndexInconsistent('test: an inconsistency');
  // The rebuild's first turn: the index cleared in part, or whole and a few of its 60 blocks' postings written again.
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(store.didIndex.state, 'rebuilding');
  for (const did of dids.slice(0, 30)) {
    const select = { dids: new Set([did]), collections: new Set<string>(), prefixes: [] };
    const read = reader.read(0, store.lastTimeUs, { maxEntries: 10_000, select, filter: (e) => e.did === did, ...asked });
    assert.ok(!read.trimmed);
    assert.deepEqual(texts(read.entries), texts(stream.filter((e) => e.did === did)), `${did}: a half-built index was taken for a whole one`);
    reader.release(read);
  }
});

test('retention removes a block\'s index postings a chunk at a time: DID replays in between read what a scan reads, and once the trim resolves the postings are gone', async (t) => {
  const dir = tempDir('contrail-index-trim-');
  t.after(() => dir.remove());
  const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'y')}`);
  const stream = events(4_000, 1_000_000, dids);
  const { logger, lines } = loggerKeepingLines();
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 1_024, logger });
  await store.commit({ entries: stream, revs: new Map() });
  let done = false;
  const trimming = store.trimBefore(stream[2_500]!.timeUs, Infinity).finally(() => (done = true));
  // A block is unreachable at once (trimmedUpTo moves past it); its postings go in later turns.
  assert.equal(store.trimmedUpTo, stream[1_023]!.timeUs);
  const before = store.readPlans.didIndex;
  let rounds = 0;
  for (; !done; rounds++) {
    for (const did of dids.slice(rounds % 280, (rounds % 280) + 20)) {
      const kept = stream.filter((e) => e.timeUs > store.trimmedUpTo && e.did === did);
      assert.deepEqual(texts(readAll(store, { dids: [did] })), texts(kept), did);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(rounds > 2, `replays ran between the trim's chunks (${rounds} rounds)`);
  assert.ok(store.readPlans.didIndex > before, 'the replays used the index');
  assert.equal(await trimming, 2_048);
  const kept = stream.slice(2_048);
  assert.equal(lines.filter((l) => /inconsistent/.test(l.msg)).length, 0, 'no posting of a trimmed block was taken for a broken index');
  await store.close();

  const raw = openLmdb({ path: dir.path, maxDbs: 16, readOnly: true });
  t.after(() => raw.close());
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const postings = [...byDid.getRange()].map(({ value }) => value.readUInt32BE(4));
  assert.equal(postings.length, kept.length - (kept.length % 1_024), 'the sealed events kept have their postings, the trimmed none');
  assert.ok(postings.every((time) => time > stream[2_047]!.timeUs % 2 ** 32));
});

test('a disk that fills up mid-transaction: the commit fails, nothing committed before it is lost, and the buffer reopens whole', { skip: process.platform !== 'linux' && 'needs ulimit -f' }, async (t) => {
  const dir = tempDir('contrail-full-');
  t.after(() => dir.remove());
  // A child process whose files may not grow past 4 MiB: LMDB's writes fail like on a full disk.
  const child = fileURLToPath(new URL('./support/fill-store.ts', import.meta.url));
  const run = spawnSync('bash', ['-c', `ulimit -f 4096; exec "${process.execPath}" --import tsx "${child}" "${dir.path}"`], { encoding: 'utf8', timeout: 120_000 });
  const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { committed: number; lastSeq: number; error: string };
  assert.ok(report.committed > 1_000 && report.error, `the disk filled after ${report.committed} events: ${report.error}`);

  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0 });
  t.after(() => store.close());
  const kept = readAll(store);
  assert.equal(kept.length, report.committed, 'exactly the committed events are there');
  assert.deepEqual(
    kept.map((e) => e.seq),
    kept.map((_, i) => i + 1),
    'in order, with their seqs',
  );
  assert.equal(store.lastSeq, report.lastSeq);
  // And ingest carries on once there is room.
  await store.commit({ entries: events(10, kept.at(-1)!.timeUs + 10, ['did:plc:cccccccccccccccccccccccc']), revs: new Map() });
  assert.equal(store.lastSeq, report.lastSeq + 10);
});
