/**
 * The tail (committed events not sealed into a block yet) is stored uncompressed, in runs, and
 * LMDB keeps no checksums: a byte of a run changed on disk (a bad sector, a stray write) was read
 * back at the next start as if sound, and its garbled event sent to every replay. A run that does
 * not match what was written must be treated like a damaged block: its events are named as lost
 * (DamagedBlockError), every read before it gets the events up to it, a read after it goes on, on
 * the main thread and on a replay worker's snapshot alike, also after the events around it are
 * sealed, and it is logged once.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { DamagedBlockError, EventStore, SnapshotReader } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { timesUntilError } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const BLOCK = 100;
/** Three commits of 30 events: three tail runs, the second of which is damaged. */
const COMMITS = 3;
const PER_COMMIT = 30;

const events: Entry[] = Array.from({ length: COMMITS * PER_COMMIT }, (_, i) => {
  const timeUs = 1_700_000_000_000_000 + (i + 1) * 10;
  return { timeUs, did: `did:plc:tail${i % 7}`, kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(`{"time_us":${timeUs},"text":"event ${i}"}`) };
});
const times = events.map((e) => e.timeUs);
const LOST = { first: times[PER_COMMIT]!, end: times[2 * PER_COMMIT - 1]! };

/** A buffer of the three commits, none sealed, whose second tail run has one byte of an event's JSON changed in data.mdb. */
async function bufferWithDamagedRun(dataDir: string): Promise<void> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: BLOCK });
  for (let c = 0; c < COMMITS; c++) await store.commit({ entries: events.slice(c * PER_COMMIT, (c + 1) * PER_COMMIT).map((e) => ({ ...e })), revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const run = Buffer.from(raw.openDB<Buffer, number>({ name: 'tail', encoding: 'binary' }).getBinary(LOST.end)!);
  await raw.close();
  const path = join(dataDir, 'data.mdb');
  const file = readFileSync(path);
  const at = file.indexOf(run);
  assert.ok(at > 0 && file.indexOf(run, at + 1) < 0, 'the run lies once in data.mdb');
  // A digit of the last event's text: the record still decodes, with a changed event.
  const digit = at + run.length - 4;
  assert.match(String.fromCharCode(file[digit]!), /\d/);
  file[digit] = file[digit] === 0x31 ? 0x32 : 0x31;
  writeFileSync(path, file);
}

/** The error names the lost events: from after the last event read before them (a damaged run's own first time_us cannot be read) to the run's last. */
function assertLost(error: unknown, what: string): void {
  assert.ok(error instanceof DamagedBlockError, `${what}: a DamagedBlockError, not ${String(error)}`);
  assert.ok(error.first > times[PER_COMMIT - 1]! && error.first <= LOST.first, `${what}: from ${error.first}`);
  assert.equal(error.end, LOST.end, what);
}

test('a tail run whose bytes changed on disk is read as lost events, named, never as sound ones; reads before and after it are served, on the main thread and on a worker snapshot, also once sealed', { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-damaged-tail-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  await bufferWithDamagedRun(dataDir);

  const logs: Array<Record<string, unknown>> = [];
  const logger = capturingLogger(logs, 'error');
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: BLOCK, logger });
  defer(() => store.close());

  const mainRead = (position: number) => store.readAfter(position, { maxEntries: 1_000 });
  const fromStart = timesUntilError(mainRead, 0);
  assert.deepEqual(fromStart.times, times.slice(0, PER_COMMIT), 'every event before the damaged run');
  assertLost(fromStart.error, 'the main thread, from the start');
  assert.deepEqual(timesUntilError(mainRead, LOST.end).times, times.slice(2 * PER_COMMIT), 'a read after it goes on to the end');

  const snapshot = new SnapshotReader(store.location, 1 << 20);
  defer(() => snapshot.close());
  const sealedEvents = store.indexState.sealedEvents;
  const workerRead = (position: number) => {
    const read = snapshot.read(position, store.lastTimeUs, { maxEntries: 1_000, sealedEvents, didIndexUsable: true });
    assert.ok(!read.trimmed);
    return read;
  };
  const fromStartOnWorker = timesUntilError(workerRead, 0);
  assert.deepEqual(fromStartOnWorker.times, times.slice(0, PER_COMMIT), `a worker snapshot: every event before it (${String(fromStartOnWorker.error)})`);
  assertLost(fromStartOnWorker.error, 'a worker snapshot');

  // More events seal the tail into a block: the lost events stay lost, named, not skipped.
  const more: Entry[] = Array.from({ length: BLOCK }, (_, i) => ({ ...events[0]!, timeUs: times.at(-1)! + (i + 1) * 10, json: Buffer.from(`{"more":${i}}`) }));
  await store.commit({ entries: more, revs: new Map() });
  for (let turns = 0; store.indexState.sealedEvents === 0; turns++) {
    assert.ok(turns < 1_000, 'a block is sealed');
    await nextTurn();
  }
  const sealed = timesUntilError(mainRead, 0);
  assert.deepEqual(sealed.times, times.slice(0, PER_COMMIT), 'sealed: every event before the lost ones');
  assertLost(sealed.error, 'sealed');

  const said = logs.filter((line) => line.level === 50 && line.end === LOST.end);
  assert.equal(said.length, 1, `logged once, naming the lost events: ${JSON.stringify(logs)}`);
});
