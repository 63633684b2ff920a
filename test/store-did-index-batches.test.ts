/**
 * The per-DID index is read up to 512 postings per DID per read (sealed-reads.ts #readByDid):
 * where a DID's range stopped early, a read may only say it examined up to that DID's last
 * posting read. These tests hold a DID with more postings than one such batch to every one of its
 * events, whatever else the read's filter rejects and however large the read may grow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';

const BUSY = 'did:plc:busybusybusybusybusybusy';
/** More than one index batch (512) of postings, and fewer than sealed events / 64, so the index is selective. */
const BUSY_EVENTS = 700;
const OTHER_EVENTS = 50_000;

async function filledStore(dataDir: string): Promise<{ store: EventStore; events: Entry[] }> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false });
  const events: Entry[] = [];
  let timeUs = 1_700_000_000_000_000;
  const total = BUSY_EVENTS + OTHER_EVENTS;
  const busyEvery = Math.floor(total / BUSY_EVENTS);
  let busyCount = 0;
  for (let i = 0; i < total; i++) {
    timeUs += 1;
    const busy = i % busyEvery === 0 && busyCount < BUSY_EVENTS;
    const did = busy ? BUSY : `did:plc:other${(i % 5_000).toString().padStart(13, '0')}`;
    // Every event alternates between two collections, the busy DID's among its own.
    const collection = (busy ? busyCount++ : i) % 2 === 0 ? 'app.bsky.feed.like' : 'app.bsky.feed.post';
    events.push({ timeUs, did, kind: 'commit', collection, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) });
  }
  for (let from = 0; from < events.length; from += 2_000) await store.commit({ entries: events.slice(from, from + 2_000), revs: new Map() });
  return { store, events };
}

function replay(store: EventStore, options: { maxEntries: number; filter: (e: Entry) => boolean; collections?: string[] }): Entry[] {
  const select = { dids: new Set([BUSY]), collections: new Set(options.collections ?? []), prefixes: [] };
  const out: Entry[] = [];
  let position = 0;
  for (let reads = 0; reads < 10_000; reads++) {
    const read = store.readAfter(position, { maxEntries: options.maxEntries, filter: options.filter, select });
    if (read.entries.length === 0 && read.position === position) return out;
    out.push(...read.entries);
    position = read.position;
  }
  throw new Error('the replay never caught up');
}

const times = (entries: readonly Entry[]) => entries.map((e) => e.timeUs);

test('a DID with more index postings than one read takes gets all its events, also when the read could take more (maxEntries above 512)', async (t) => {
  const dir = tempDir('contrail-did-batches-');
  t.after(() => dir.remove());
  const { store, events } = await filledStore(dir.path);
  t.after(() => store.close());
  const expected = events.filter((e) => e.did === BUSY);
  assert.equal(expected.length, BUSY_EVENTS);
  const before = store.readPlans.didIndex;
  const got = replay(store, { maxEntries: 10_000, filter: (e) => e.did === BUSY });
  assert.ok(store.readPlans.didIndex > before, 'the replay went through the per-DID index');
  assert.equal(got.length, expected.length, `every one of the DID's ${expected.length} events (got ${got.length})`);
  assert.deepEqual(times(got), times(expected));
});

test('a DID with more index postings than one read takes gets all its events through a collection filter, at the server\'s 512 events per read', async (t) => {
  const dir = tempDir('contrail-did-batches-');
  t.after(() => dir.remove());
  const { store, events } = await filledStore(dir.path);
  t.after(() => store.close());
  const wanted = (e: Entry) => e.did === BUSY && e.collection === 'app.bsky.feed.like';
  const expected = events.filter(wanted);
  const before = store.readPlans.didIndex;
  const got = replay(store, { maxEntries: 512, filter: wanted, collections: ['app.bsky.feed.like'] });
  assert.ok(store.readPlans.didIndex > before, 'the replay went through the per-DID index');
  assert.equal(got.length, expected.length, `every one of the DID's ${expected.length} likes (got ${got.length})`);
  assert.deepEqual(times(got), times(expected));
});
