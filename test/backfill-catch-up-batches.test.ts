/**
 * A repo backfill's catch-up reads the repo's stored events through the per-DID index
 * (subscriber-backfill.ts #catchUp, 512 events per read) and keeps the commits newer than the
 * snapshot. For a busy repo — more stored events than one index batch — it must still keep every
 * one of them (see test/store-did-index-batches.test.ts for the read that loses them).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createBackfillMetrics, SubscriberBackfill, type BackfillContext } from '../src/backfill/index.ts';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';

const BUSY = 'did:plc:busybusybusybusybusybusy';
const BUSY_EVENTS = 700;
const OTHER_EVENTS = 50_000;
const rev = (n: number) => `3l${n.toString().padStart(10, '0')}`;

test('a busy repo\'s catch-up keeps every stored commit newer than its snapshot, past one index batch', async (t) => {
  const dir = tempDir('contrail-catch-up-');
  t.after(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  t.after(() => store.close());
  const events: Entry[] = [];
  /** The busy repo's events, each with its commit's number (its rev is rev(n)). */
  const busyEvents: Array<{ entry: Entry; n: number }> = [];
  const total = BUSY_EVENTS + OTHER_EVENTS;
  const busyEvery = Math.floor(total / BUSY_EVENTS);
  let busyCount = 0;
  for (let i = 0; i < total; i++) {
    const timeUs = 1_700_000_000_000_000 + i + 1;
    const busy = i % busyEvery === 0 && busyCount < BUSY_EVENTS;
    const did = busy ? BUSY : `did:plc:${(i % 5_000).toString(36).padStart(24, 'a')}`;
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"${rev(busy ? busyCount++ : i)}","operation":"create","collection":"app.bsky.feed.like","rkey":"r${i}","record":{},"cid":"bafy${i}"}}`;
    const entry: Entry = { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(json) };
    events.push(entry);
    if (busy) busyEvents.push({ entry, n: busyCount - 1 });
  }
  for (let from = 0; from < events.length; from += 2_000) await store.commit({ entries: events.slice(from, from + 2_000), revs: new Map() });

  // The snapshot reflects the repo's first 100 commits; the 600 after it are owed from the buffer.
  const snapshotRev = rev(99);
  const expected = busyEvents.filter(({ n }) => n > 99).map(({ entry }) => entry);
  assert.equal(expected.length, BUSY_EVENTS - 100);
  const requestedAt = events[0]!.timeUs - 1;
  let arrived!: () => void;
  const output = new Promise<void>((resolve) => (arrived = resolve));
  const context = {
    snapshots: { get: async () => ({ did: BUSY, rev: snapshotRev, commitCid: 'bafysnapshot', records: [], skipped: 0, bytes: 0, since: requestedAt }) },
    store,
    metrics: createBackfillMetrics(new Registry()),
    logger: pino({ level: 'silent' }),
  } as unknown as BackfillContext;
  // The subscriber has examined (withheld) everything stored while the snapshot was fetched.
  const backfill = new SubscriberBackfill(context, () => true, () => arrived(), () => store.hotLog.newest, 1);
  backfill.request([BUSY], requestedAt);
  await output;
  const sent = backfill.peek(store.hotLog.newest, 10_000).filter((item): item is Entry => !Buffer.isBuffer(item));
  assert.equal(sent.length, expected.length, `the catch-up holds ${sent.length} of the ${expected.length} commits newer than the snapshot`);
  assert.deepEqual(sent.map((e) => e.timeUs), expected.map((e) => e.timeUs));
});
