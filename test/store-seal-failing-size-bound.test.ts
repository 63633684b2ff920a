/**
 * While sealing fails (a full disk), it is retried after the next commit, not on every turn, and
 * the age bound's trim (trimBefore) removes tail events without trying the seal again. The size
 * bound's trim (trimOldest) must do the same: each retention pass calls it after every commit
 * while the buffer is over its bound, and a seal tried there compresses up to eight blocks only
 * to fail again on the full disk. (On a full disk the removal fails too, with ENOSPC, which the
 * retention pass logs and retries; the seal must not be tried on the way.)
 */
import assert from 'node:assert/strict';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { EventStore } from '../src/store/event-store.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { readAll, texts } from './support/store-reads.ts';
import { smallFileSystem } from './support/small-file-system.ts';
import { SEAL_CRASH_BLOCK, SEAL_GROUP, sealCrashEvents } from './support/seal-crash-events.ts';
import { capturingLogger } from './support/upstream-harness.ts';

test('while sealing fails on a full disk, the size bound trims the tail without trying the seal again', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-seal-failing-size-');
  defer(() => dir.remove());
  const at = join(dir.path, 'disk');
  const disk = smallFileSystem(at, '80m');
  if (!disk) {
    t.skip('cannot mount a tmpfs here (needs root): a seal on a full disk is not tested');
    return;
  }
  defer(() => disk.unmount());
  const logs: { level: number; msg: string }[] = [];
  const logger = capturingLogger(logs, 'warn');
  const events = sealCrashEvents().slice(0, SEAL_GROUP * SEAL_CRASH_BLOCK);
  const store = new EventStore({ dataDir: join(at, 'data'), hotLogBytes: 0, blockEvents: SEAL_CRASH_BLOCK, fsync: false, mapSizeBytes: 64 << 20, logger });
  defer(() => store.close());
  await store.commit({ entries: events, revs: new Map() });
  // The commit queued its first block's seal for a later turn; the disk fills before it runs.
  const filler = join(at, 'filler');
  writeFileSync(filler, Buffer.alloc(statfsSync(at).bavail * statfsSync(at).bsize));
  for (let turn = 0; turn < 200; turn++) await nextTurn();
  assert.deepEqual(store.sealState, { unsealedEvents: events.length, failedSeals: 1 }, 'the seal failed once');

  // Removing tail events needs room too: the retention pass logs the error and tries again later.
  await assert.rejects(store.trimOldest(10), /No space left on device/);
  assert.deepEqual(store.sealState, { unsealedEvents: events.length, failedSeals: 1 }, 'the size bound did not try the seal again');

  // With room again and no commit since, the seal waits for the next commit; the size bound trims the tail.
  rmSync(filler);
  const removed = await store.trimOldest(10);
  assert.equal(removed, 10, 'the oldest tail events');
  assert.deepEqual(store.sealState, { unsealedEvents: events.length - removed, failedSeals: 1 }, 'still without trying the seal');
  assert.deepEqual(texts(readAll(store)), texts(events.slice(removed)), 'the rest stay readable');
});
