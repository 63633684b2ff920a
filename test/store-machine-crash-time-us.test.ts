/**
 * Invariant 1 across a machine crash. Without --fsync a machine crash can tear the buffer, so the
 * next start sets it aside and begins a new one. If the wall clock went back across the reboot,
 * the new buffer's clock must still start above every time_us the lost buffer gave out: clients
 * hold those as cursors, and a cursor the new buffer reaches again later would skip its events.
 * The real gateway (`contrail serve --upstream demo`) starts on the data dir a crashed run left.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { wallClockMicros } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';
import { bootId, crashedRun, markCrashed, RUN_MARKER } from './support/machine-crash.ts';
import { waitUntil } from './support/poll.ts';
import { Subscription } from './support/subscribe-client.ts';

/** How far the wall clock went back across the reboot. */
const CLOCK_SET_BACK_US = 3_600_000_000;

function identityEvent(timeUs: number, i: number): Entry {
  const did = `did:plc:${String(i).padStart(24, 'c')}`;
  const json = `{"did":"${did}","time_us":${timeUs},"kind":"identity","identity":{"did":"${did}","seq":${i + 1},"time":"2026-12-04T00:00:00Z"}}`;
  return { timeUs, did, kind: 'identity', collection: null, json: Buffer.from(json) };
}

/** The events a run gave out before the machine crashed, stamped by a clock an hour ahead of the one after the reboot. */
function lostEvents(): Entry[] {
  const first = wallClockMicros() + CLOCK_SET_BACK_US;
  return Array.from({ length: 20 }, (_, i) => identityEvent(first + i * 1_000, i));
}

const commitTimes = (client: Subscription) => client.events.filter((e) => e.kind === 'commit').map((e) => e.time_us as number);

test('after a machine crash with the wall clock set back, the new buffer gives out time_us above every one the lost buffer gave', { skip: bootId() === null && 'no boot id on this OS', timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-crash-time-us-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');

  const lost = lostEvents();
  await crashedRun(dataDir, lost);
  const given = lost.at(-1)!.timeUs;

  const contrail = ContrailProcess.serve(['--upstream', 'demo', '--data-dir', dataDir]);
  defer(() => contrail.stop());
  await contrail.waitForLog('THE LAST RUN ENDED IN A MACHINE CRASH');
  const port = await contrail.waitServing();
  defer(() => Subscription.closeAll());

  const fromStart = await Subscription.open(port, 'cursor=0');
  await fromStart.waitForCount(5, 'the new buffer’s first events');
  const first = commitTimes(fromStart)[0]!;
  assert.ok(first > given, `the new buffer's first time_us, ${first}, must be above ${given}, the newest the lost buffer gave out`);

  // A client resuming with the newest cursor it was given gets the new buffer's events, each after its cursor.
  const resumed = await Subscription.open(port, `cursor=${given}`);
  await resumed.waitForCount(5, 'events after the cursor the client held', 20_000);
  assert.ok(commitTimes(resumed).every((timeUs) => timeUs > given), `events after cursor ${given}, not ${commitTimes(resumed).slice(0, 3).join(', ')}…`);
});

test('without fsync the marker holds a time_us ceiling a minute above the newest, raised in the background once the newest comes within 30 s of it, at once if the newest passes it; a new buffer after a crash starts there', { skip: bootId() === null && 'no boot id on this OS' }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-time-us-ceiling-');
  defer(() => dir.remove());
  const ceiling = () => JSON.parse(readFileSync(join(dir.path, RUN_MARKER), 'utf8')).timeUsCeiling as number;
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  const base = 1_700_000_000_000_000;
  const second = 1_000_000;
  await store.commit({ entries: [identityEvent(base, 0)], revs: new Map() });
  assert.equal(ceiling(), base + 60 * second);
  await store.commit({ entries: [identityEvent(base + 29 * second, 1)], revs: new Map() });
  assert.equal(ceiling(), base + 60 * second, 'not rewritten while the newest is more than 30 s below it');
  await store.commit({ entries: [identityEvent(base + 31 * second, 2)], revs: new Map() });
  // Raised in the background: the ceiling on disk still holds what was given out meanwhile.
  await waitUntil(() => ceiling() === base + 91 * second, 'the ceiling raised to a minute above the newest');
  // A commit past the ceiling on disk (an hour on) does not wait for the background: the raise is written before it returns.
  await store.commit({ entries: [identityEvent(base + 3_600 * second, 3)], revs: new Map() });
  assert.equal(ceiling(), base + 3_660 * second, 'written at once when the newest passes the ceiling on disk');
  const marker = readFileSync(join(dir.path, RUN_MARKER), 'utf8');
  await store.close();
  markCrashed(dir.path, marker);

  const next = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  defer(() => next.close());
  assert.match(next.previousRun.setAside ?? '', /data\.mdb\.unsynced-/);
  assert.equal(next.timeUsFloor, base + 3_660 * second, 'its clock continues above the ceiling: at most a minute above the newest time_us lost');
  assert.equal(next.lastTimeUs, 0, "which a leader's numbering (commitAssigned) is not held to");
});
