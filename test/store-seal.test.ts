/**
 * Sealing a block runs in steps on later turns of the event loop (the store's design note):
 * its partitions compressed one per step, its per-DID postings written a chunk per transaction,
 * then the block itself. These tests hold readers to exactly-once between every two steps, and
 * a process killed between a block's postings and the block itself to a buffer that reopens
 * whole, with an exact index.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore } from '../src/store/event-store.ts';
import { SnapshotReader } from '../src/store/snapshot-reader.ts';
import { tempDir } from './support/gateway.ts';
import { readAll, texts } from './support/store-reads.ts';
import { smallFileSystem } from './support/small-file-system.ts';
import { SEAL_CRASH_BLOCK, SEAL_DIDS, SEAL_GROUP, sealCrashEvents } from './support/seal-crash-events.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('while blocks are sealed step by step, every event is read once at every step: all of them, by DID, and by a snapshot reader', async (t) => {
  const dir = tempDir('contrail-seal-');
  t.after(() => dir.remove());
  const events = sealCrashEvents();
  const did = SEAL_DIDS[3]!;
  const expected = texts(events);
  const expectedOfDid = texts(events.filter((e) => e.did === did));
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: SEAL_CRASH_BLOCK, fsync: false });
  t.after(() => store.close());
  await store.commit({ entries: events, revs: new Map() });
  const reader = new SnapshotReader(store.location, 1 << 20);
  t.after(() => reader.close());
  let turns = 0;
  for (; store.indexState.sealedEvents < SEAL_GROUP * SEAL_CRASH_BLOCK; turns++) {
    assert.ok(turns < 1_000, 'the blocks are sealed');
    assert.deepEqual(texts(readAll(store)), expected, `every event once, turn ${turns}`);
    assert.deepEqual(texts(readAll(store, { dids: [did] })), expectedOfDid, `the DID's events once, turn ${turns}`);
    const snapshot = reader.read(0, events.at(-1)!.timeUs, { maxEntries: 10_000, ...store.indexState });
    assert.ok(!snapshot.trimmed);
    assert.deepEqual(texts(snapshot.entries), expected, `a snapshot reader: every event once, turn ${turns}`);
    await nextTurn();
  }
  assert.ok(turns > SEAL_GROUP, `the seals took ${turns} turns of the event loop, each block's transaction one of its own`);
  assert.equal(store.indexState.sealedEvents, SEAL_GROUP * SEAL_CRASH_BLOCK);
  assert.deepEqual(texts(readAll(store)), expected);
  const byIndex = store.readPlans.didIndex;
  assert.deepEqual(texts(readAll(store, { dids: [did] })), expectedOfDid);
  assert.ok(store.readPlans.didIndex > byIndex, 'the DID read used the index');
});

test('a process killed between a block\'s postings and the block reopens whole: each event once, the index exact and not doubled', async (t) => {
  const dir = tempDir('contrail-seal-crash-');
  t.after(() => dir.remove());
  const child = spawnSync(process.execPath, ['--import', 'tsx', 'test/support/seal-crash.ts', dir.path], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(child.signal, 'SIGKILL', `the child killed itself mid-seal (${child.stdout}${child.stderr})`);
  const countPostings = (byDid: { getValuesCount(key: Buffer): number }) => SEAL_DIDS.reduce((sum, did) => sum + byDid.getValuesCount(didHash(did)), 0);
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  const rawByDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const postingsAhead = countPostings(rawByDid);
  assert.equal(raw.openDB({ name: 'directory' }).getCount(), 0, 'no block was sealed');
  await raw.close();
  assert.ok(postingsAhead > 0, 'postings of the block were written before it');

  const events = sealCrashEvents();
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: SEAL_CRASH_BLOCK, fsync: false });
  assert.equal(store.indexState.sealedEvents, SEAL_GROUP * SEAL_CRASH_BLOCK, 'reopening sealed the blocks');
  assert.deepEqual(texts(readAll(store)), texts(events));
  for (const did of SEAL_DIDS.slice(0, 5)) {
    const byIndex = store.readPlans.didIndex;
    assert.deepEqual(texts(readAll(store, { dids: [did] })), texts(events.filter((e) => e.did === did)), did);
    assert.ok(store.readPlans.didIndex > byIndex, `the read of ${did} used the index`);
  }
  await store.close();
  const reopened = openLmdb({ path: dir.path, maxDbs: 16 });
  const byDid = reopened.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  assert.equal(countPostings(byDid), SEAL_GROUP * SEAL_CRASH_BLOCK, 'one posting per sealed event');
  await reopened.close();
});

test('a seal that fails on a full disk loses nothing: the events stay readable from the tail, the failure is logged once, and sealing resumes after the next commit once there is room', async (t) => {
  const dir = tempDir('contrail-seal-full-');
  const at = join(dir.path, 'disk');
  const disk = smallFileSystem(at, '80m');
  const open: EventStore[] = [];
  t.after(async () => {
    try {
      for (const store of open) await store.close();
      disk?.unmount();
    } finally {
      dir.remove();
    }
  });
  if (!disk) {
    t.skip('cannot mount a tmpfs here (needs root): a seal on a full disk is not tested');
    return;
  }
  const logs: { level: string; msg: string }[] = [];
  const logger = capturingLogger(logs, 'warn');
  const events = sealCrashEvents();
  const first = events.slice(0, SEAL_GROUP * SEAL_CRASH_BLOCK);
  const store = new EventStore({ dataDir: join(at, 'data'), hotLogBytes: 0, blockEvents: SEAL_CRASH_BLOCK, fsync: false, mapSizeBytes: 64 << 20, logger });
  open.push(store);
  await store.commit({ entries: first, revs: new Map() });
  // The commit queued its first block's seal for a later turn; the disk fills before it runs.
  const filler = join(at, 'filler');
  writeFileSync(filler, Buffer.alloc(statfsSync(at).bavail * statfsSync(at).bsize));
  for (let turn = 0; turn < 200; turn++) await nextTurn();
  const failures = logs.filter((line) => /could not seal a block/.test(line.msg));
  assert.equal(failures.length, 1, `the failed seal is logged once: ${JSON.stringify(logs)}`);
  assert.deepEqual(store.sealState, { unsealedEvents: first.length, failedSeals: 1 }, 'tried once, not again on every turn while no commit came');
  assert.equal(store.indexState.sealedEvents, 0, 'nothing was sealed while the disk was full');
  assert.deepEqual(texts(readAll(store)), texts(first), 'every event once, from the tail');
  const did = SEAL_DIDS[3]!;
  assert.deepEqual(texts(readAll(store, { dids: [did] })), texts(first.filter((e) => e.did === did)));

  rmSync(filler);
  await store.commit({ entries: events.slice(first.length), revs: new Map() });
  for (let turns = 0; store.indexState.sealedEvents < first.length; turns++) {
    assert.ok(turns < 1_000, 'the blocks are sealed once there is room');
    await nextTurn();
  }
  assert.ok(logs.some((line) => /sealing blocks works again/.test(line.msg)), 'the recovery is logged');
  assert.deepEqual(store.sealState, { unsealedEvents: events.length - first.length, failedSeals: 1 });
  assert.deepEqual(texts(readAll(store)), texts(events));
  assert.deepEqual(texts(readAll(store, { dids: [did] })), texts(events.filter((e) => e.did === did)));
  await open.pop()!.close();

  const reopened = new EventStore({ dataDir: join(at, 'data'), hotLogBytes: 0, blockEvents: SEAL_CRASH_BLOCK, fsync: false, mapSizeBytes: 64 << 20 });
  open.push(reopened);
  assert.equal(reopened.indexState.sealedEvents, first.length);
  assert.deepEqual(texts(readAll(reopened)), texts(events), 'every event once after reopening');
  const byIndex = reopened.readPlans.didIndex;
  assert.deepEqual(texts(readAll(reopened, { dids: [did] })), texts(events.filter((e) => e.did === did)));
  assert.ok(reopened.readPlans.didIndex > byIndex, 'the DID read used the index');
});
