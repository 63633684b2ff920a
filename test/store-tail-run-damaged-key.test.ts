/**
 * A tail run is keyed by its newest event's time_us, and its CRC-32 covers its records, not that
 * key. A key whose bytes changed on disk (the run's value intact) still reads as a number, and
 * readers seek by it: a replay worker reading the tail from a position inside the run seeks the
 * first run keyed above that position, so a key changed to below the run's events made it skip
 * them and go on with the next run's, a gap the client was never told of. The key is what a
 * sound run's records say it is, so a start must take a run whose key is not its newest event's
 * time_us as damaged: its events named lost (BufferDamaged) on every read path, as for a run that
 * fails its CRC-32, and the events before and after served. Found in session 18. A key changed
 * in place to above the next run's (a high bit flipped) leaves the run where it was in its LMDB
 * page, out of order: a worker's seek for the runs after it then found it first and, its key past
 * the read's end, stopped there, so a read from after the lost events returned none of the next
 * run's and moved past them (found by review). The next start must name the lost events too.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { DamagedBlockError, EventStore, SnapshotReader } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { changeKey } from './support/lmdb-pages.ts';
import { type ReadPath, timesUntilError } from './support/store-reads.ts';

const RUNS = 3;
const PER_RUN = 10;
const events: Entry[] = Array.from({ length: RUNS * PER_RUN }, (_, i) => {
  const timeUs = 1_700_000_000_000_000 + (i + 1) * 64;
  return { timeUs, did: `did:plc:${String(i % 4).padStart(24, 'k')}`, kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(`{"time_us":${timeUs},"n":${i}}`) };
});
const times = events.map((e) => e.timeUs);
/** The second run: its key is changed to just above the first run's, below every event it holds. */
const run = { first: times[PER_RUN]!, end: times[2 * PER_RUN - 1]! };
const before = times.slice(0, PER_RUN);
const after = times.slice(2 * PER_RUN);

/**
 * Three runs, none sealed, then the second run's key changed in data.mdb: below its events, to one
 * between the first run's key and its own first event, or above every run's key (a high bit flipped).
 */
async function bufferWithChangedKey(dataDir: string, to: 'below' | 'above'): Promise<void> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: 1_000 });
  for (let r = 0; r < RUNS; r++) await store.commit({ entries: events.slice(r * PER_RUN, (r + 1) * PER_RUN).map((e) => ({ ...e })), revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  let pageSize: number;
  let key: Buffer;
  let newKey: Buffer | undefined;
  try {
    ({ pageSize } = raw.getStats() as { pageSize: number });
    const byNumber = raw.openDB<Buffer, number>({ name: 'tail', encoding: 'binary' });
    const rawKeys = raw.openDB<Buffer, Buffer>({ name: 'tail', encoding: 'binary', keyEncoding: 'binary' });
    // How lmdb-js stores a time_us as a key: put with an empty value, read back as bytes, removed again.
    const encoded = (timeUs: number): Buffer => {
      byNumber.putSync(timeUs, Buffer.alloc(0));
      const bytes = Buffer.from([...rawKeys.getRange()].find(({ value }) => value.length === 0)!.key);
      byNumber.removeSync(timeUs);
      return bytes;
    };
    key = [...rawKeys.getKeys()].map((k) => Buffer.from(k))[1]!;
    // A time_us between the runs, or after the last, whose key is as long as the run's (keys are variable-length).
    const [from, until] = to === 'below' ? [times[PER_RUN - 1]! + 1, run.first] : [times.at(-1)! + 1, times.at(-1)! + 1_000_000];
    for (let timeUs = from; timeUs < until && !newKey; timeUs++) {
      const candidate = encoded(timeUs);
      if (candidate.length === key.length) newKey = candidate;
    }
  } finally {
    await raw.close();
  }
  assert.ok(newKey, `a key ${to} the runs as long as the run key`);
  assert.ok(changeKey(dataDir, pageSize, key, newKey) > 0, 'the run key is in data.mdb');
}

function assertEndsAtRun(result: { times: number[]; error?: unknown }, expected: number[], what: string): void {
  assert.deepEqual(result.times, expected, `${what}: the events before the run (${String(result.error)})`);
  assert.ok(result.error instanceof DamagedBlockError, `${what}: ends with a DamagedBlockError naming the run's events, not ${String(result.error)}`);
  assert.ok(result.error.first > times[PER_RUN - 1]! && result.error.first <= run.first, `${what}: from ${result.error.first}`);
  assert.equal(result.error.end, run.end, `${what}: to the run's newest event`);
}

for (const to of ['below', 'above'] as const) {
  test(`a tail run whose key changed on disk (to ${to} the runs') is never read past or out of place: its events are named lost on the main thread and a worker's snapshot, and the events around them are served, also after the next start`, { timeout: 60_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-tail-key-');
    defer(() => dir.remove());
    const dataDir = join(dir.path, 'data');
    await bufferWithChangedKey(dataDir, to);

    // The start that finds the damage names it in the buffer; the next one must read that again.
    await new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: 1_000 }).close();
    const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: 1_000 });
    defer(() => store.close());
    const snapshot = new SnapshotReader(store.location, 1 << 20);
    defer(() => snapshot.close());
    const onWorker: ReadPath = (position) => {
      const read = snapshot.read(position, store.lastTimeUs, { maxEntries: 1_000, sealedEvents: store.indexState.sealedEvents, didIndexUsable: true });
      assert.ok(!read.trimmed);
      return read;
    };
    const onMain: ReadPath = (position) => store.readAfter(position, { maxEntries: 1_000 });

    for (const [path, read] of [['a worker snapshot', onWorker], ['the main thread', onMain]] as const) {
      // A client whose cursor is inside the run.
      const inside = timesUntilError(read, times[PER_RUN + 2]!);
      assert.ok(inside.error instanceof DamagedBlockError, `${path}, from inside the run: its events are named lost, not skipped (read ${inside.times.length} events: ${inside.times.filter((time) => time <= run.end).length} of the run's, ${String(inside.error)})`);
      assert.deepEqual(inside.times, [], `${path}, from inside the run: nothing before the DamagedBlockError`);
      assertEndsAtRun(timesUntilError(read, 0), before, `${path}, from the start`);
      assert.deepEqual(timesUntilError(read, run.end).times, after, `${path}: a read after the run goes on to the end`);
    }
  });
}
