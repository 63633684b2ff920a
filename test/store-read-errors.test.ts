/**
 * A read LMDB refuses (a page damaged on disk) marks the read transaction it ran in as failed,
 * and LMDB then refuses every read in it (MDB_BAD_TXN) until it is renewed. The store must renew
 * it: a read that meets damage ends with its reason, and the next read, in the same turn of the
 * event loop (other replays', the metrics'), is served as if nothing happened.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { DamagedBlockError, EventStore, UnreadableBufferError } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { breakLeafPagesOf, pointValuePastFile } from './support/lmdb-pages.ts';

const BUNDLED = readFileSync(fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url)));
const BLOCK = 1_024;
const REPO = 'did:plc:repo5';

const events: Entry[] = Array.from({ length: 4 * BLOCK + 10 }, (_, i) => {
  const timeUs = 1_000_000 + i * 10;
  const did = i % 5 === 0 ? REPO : `did:plc:other${i % 13}`;
  return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
});

async function damagedBuffer(dataDir: string, damage: (pageSize: number) => Promise<void> | void): Promise<EventStore> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED });
  await store.commit({ entries: events, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  await raw.close();
  await damage(pageSize);
  return new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED });
}

test('a block frame LMDB cannot find (MDB_PAGE_NOTFOUND) is a DamagedBlockError, and the next read in the same turn is served', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-read-errors-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const lastOfSecond = events[2 * BLOCK - 1]!.timeUs;
  const store = await damagedBuffer(dataDir, async (pageSize) => {
    const raw = openLmdb({ path: dataDir, maxDbs: 16 });
    const frame = Buffer.from(raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' }).getBinary([lastOfSecond, 1])!);
    await raw.close();
    pointValuePastFile(dataDir, pageSize, frame);
  });
  defer(() => store.close());
  assert.throws(() => store.readAfter(events[BLOCK - 1]!.timeUs, { maxEntries: 100 }), (err) => err instanceof DamagedBlockError && /MDB_PAGE_NOTFOUND/.test(err.message));
  const after = store.readAfter(lastOfSecond, { maxEntries: 100 });
  assert.deepEqual(after.entries.map((e) => e.timeUs), events.slice(2 * BLOCK, 2 * BLOCK + 100).map((e) => e.timeUs), 'the read after it, in the same turn');
  assert.equal(store.oldest()?.timeUs, events[0]!.timeUs);
});

test('a page of the per-DID index LMDB refuses (MDB_CORRUPTED) ends that read with an UnreadableBufferError naming the position, and the next read in the same turn is served', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-read-errors-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const store = await damagedBuffer(dataDir, (pageSize) => void breakLeafPagesOf(dataDir, pageSize, didHash(REPO)));
  defer(() => store.close());
  const repoOnly = { maxEntries: 100, filter: (e: Entry) => e.did === REPO, select: { dids: new Set([REPO]), collections: new Set<string>(), prefixes: [] } };
  assert.throws(
    () => store.readAfter(0, repoOnly),
    (err) => err instanceof UnreadableBufferError && err.position === 0 && /MDB_[A-Z_]+/.test(err.message),
  );
  const all = store.readAfter(0, { maxEntries: 100 });
  assert.deepEqual(all.entries.map((e) => e.timeUs), events.slice(0, 100).map((e) => e.timeUs), 'the read after it, in the same turn');
  assert.equal(store.oldest()?.timeUs, events[0]!.timeUs);
});

// Review (session 18): renewing the read transaction is a write commit (an fsync under --fsync).
// A block whose bytes changed fails zstd's checksum after LMDB read it without fault: its
// transaction is sound, and every replay that reaches the block (each client reconnecting from
// before it) must not cost a write.
test('reads that meet a block whose bytes changed (zstd\'s checksum) commit no write: LMDB failed nothing', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-read-errors-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const lastOfSecond = events[2 * BLOCK - 1]!.timeUs;
  const store = await damagedBuffer(dataDir, async () => {
    const raw = openLmdb({ path: dataDir, maxDbs: 16 });
    const frames = [...raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' }).getRange()].filter(({ key }) => key[0] === lastOfSecond).map(({ value }) => Buffer.from(value));
    await raw.close();
    const path = join(dataDir, 'data.mdb');
    const file = readFileSync(path);
    for (const frame of frames) for (let at = file.indexOf(frame); at >= 0; at = file.indexOf(frame, at + 1)) file[at + (frame.length >> 1)]! ^= 0x5a;
    writeFileSync(path, file);
  });
  // LMDB's count of write transactions, read beside the store (closed after it).
  const observer = openLmdb({ path: dataDir, maxDbs: 16, readOnly: true });
  defer(() => observer.close());
  defer(() => store.close());
  const writes = () => (observer.getStats() as { lastTxnId: number }).lastTxnId;
  const before = writes();
  const REPLAYS = 10;
  for (let i = 0; i < REPLAYS; i++) {
    assert.throws(() => store.readAfter(events[BLOCK - 1]!.timeUs, { maxEntries: 100 }), (err) => err instanceof DamagedBlockError && !/MDB_/.test(err.message), `replay ${i} meets the damaged block`);
  }
  assert.equal(writes() - before, 0, `${REPLAYS} reads that met the block committed no write`);
  const after = store.readAfter(lastOfSecond, { maxEntries: 100 });
  assert.deepEqual(after.entries.map((e) => e.timeUs), events.slice(2 * BLOCK, 2 * BLOCK + 100).map((e) => e.timeUs), 'the read after it is served');
});

// Session 19: a rebuild of the per-DID index runs in steps on later turns; one whose read LMDB
// refuses fails the rebuild (the index stays bypassed) and must leave no failed transaction behind.
test('a per-DID index rebuild whose read LMDB refuses (MDB_CORRUPTED) leaves the index bypassed, counted, and the next read is served', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-read-errors-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  // The index's first page, where the rebuild's first step starts reading its keys (LMDB refuses
  // it there; a broken page a cursor only walks onto from the one before fails LMDB's own
  // assertion, and the process aborts: the README's Design says so).
  const [first] = [...new Set(events.map((e) => e.did))].map((did) => didHash(did)).sort(Buffer.compare);
  const store = await damagedBuffer(dataDir, async (pageSize) => {
    breakLeafPagesOf(dataDir, pageSize, first!);
    // Marked inconsistent: the start rebuilds the index, whose first step reads its keys.
    const raw = openLmdb({ path: dataDir, maxDbs: 16 });
    await raw.openDB<unknown, string>({ name: 'meta' }).put('didIndexBroken', true);
    await raw.close();
  });
  defer(() => store.close());
  await waitUntil(() => store.didIndex.state === 'bypassed', 'the rebuild to fail');
  const all = store.readAfter(0, { maxEntries: 100 });
  assert.deepEqual(all.entries.map((e) => e.timeUs), events.slice(0, 100).map((e) => e.timeUs), 'the read after it');
  assert.equal(store.oldest()?.timeUs, events[0]!.timeUs);
  assert.equal(store.unreadableReads, 1, 'the refused read is counted');
});
