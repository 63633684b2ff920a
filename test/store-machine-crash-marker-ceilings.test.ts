/**
 * After a machine crash without --fsync the buffer is set aside and a new one begins, numbering
 * its events above every seq and time_us the lost buffer gave out, as the run marker's ceilings
 * say (store/run-marker.ts). A marker that holds none — written by a contrail from before the
 * ceilings, or one that cannot be read (damaged on disk: the buffer is set aside then too, since
 * nothing says the machine did not crash) — must not let the new buffer number from seq 1 and the
 * wall clock again: clients hold the lost buffer's seqs and time_us as cursors, and a seq given
 * again names another event. The ceilings are then taken from the buffer set aside: what it had
 * on disk, plus what a run may give out beyond that before its marker is raised. Found in
 * session 18: the new buffer began again at seq 1, and its clock at the wall clock's.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { wallClockMicros } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { bootId, crashedRun, RUN_MARKER } from './support/machine-crash.ts';

/** How far ahead of the wall clock after the reboot the lost buffer's clock ran (it went back across the reboot). */
const CLOCK_SET_BACK_US = 3_600_000_000;

function identityEvent(timeUs: number, i: number): Entry {
  const did = `did:plc:${String(i).padStart(24, 'k')}`;
  return { timeUs, did, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"identity"}`) };
}

const markers = [
  { what: 'a marker that cannot be read (cut short)', rewrite: (marker: string) => marker.slice(0, 20) },
  {
    what: 'a marker of a contrail from before the ceilings',
    rewrite: (marker: string) => {
      const { seqCeiling: _seq, timeUsCeiling: _timeUs, ...older } = JSON.parse(marker);
      return JSON.stringify(older);
    },
  },
];

for (const { what, rewrite } of markers) {
  test(`after a machine crash, with ${what}, the new buffer numbers its events above every seq and time_us the lost buffer gave out`, { skip: bootId() === null && 'no boot id on this OS' }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-marker-ceilings-');
    defer(() => dir.remove());
    const first = wallClockMicros() + CLOCK_SET_BACK_US;
    const lost = Array.from({ length: 20 }, (_, i) => identityEvent(first + i * 1_000, i));
    await crashedRun(dir.path, lost);
    const marker = join(dir.path, RUN_MARKER);
    writeFileSync(marker, rewrite(readFileSync(marker, 'utf8')));

    const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
    defer(() => store.close());
    assert.match(store.previousRun.setAside ?? '', /data\.mdb\.unsynced-/, 'the buffer was set aside');
    const next = [identityEvent(wallClockMicros(), 100)];
    await store.commit({ entries: next, revs: new Map() });
    assert.ok(next[0]!.seq! > lost.at(-1)!.seq!, `its first seq, ${next[0]!.seq}, is above ${lost.at(-1)!.seq}, the lost buffer's last`);
    assert.ok(store.timeUsFloor > lost.at(-1)!.timeUs, `its clock starts above ${lost.at(-1)!.timeUs}, the lost buffer's last time_us, not at ${store.timeUsFloor}`);
  });
}
