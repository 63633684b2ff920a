/**
 * The replay buffer on a real LMDB in a temp dir: ordering, inclusive cursors, batches and
 * filters, hot log vs disk, reopen, retention by age and size, span(), commit atomicity.
 *
 * readAfter(position) returns events with time_us > position; a client's inclusive cursor
 * (`time_us >= cursor`) is therefore read as position = cursor - 1.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Entry, EventKind } from '../src/events/entry.ts';
import { encodeRecords } from '../src/store/codec.ts';
import { readRun } from '../src/store/tail-runs.ts';
import { mapSizeFor } from '../src/store/environment.ts';
import { EventStore, type EventStoreOptions } from '../src/store/event-store.ts';
import { createStoreMetrics } from '../src/store/metrics.ts';
import { Retention } from '../src/store/retention.ts';
import { SLAB_BYTES } from '../src/store/slabs.ts';
import { SnapshotReader } from '../src/store/snapshot-reader.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { mulberry32 } from './support/synthetic.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const DIDS = ['did:plc:alice000000000000000000a', 'did:plc:bob00000000000000000000b', 'did:web:carol.example.com'] as const;
const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow', 'app.bsky.feed.repost'];

/** A realistic event: its JSON carries its own time_us, as the real ones do. */
function makeEntry(timeUs: number, i: number, padding = 0): Entry {
  const did = DIDS[i % DIDS.length]!;
  let kind: EventKind = 'commit';
  if (i % 11 === 5) kind = 'identity';
  else if (i % 13 === 7) kind = 'account';
  const collection = kind === 'commit' ? COLLECTIONS[i % COLLECTIONS.length]! : null;
  const body =
    kind === 'commit'
      ? `"commit":{"rev":"3l${i}","operation":"create","collection":"${collection}","rkey":"r${i}","record":{"text":"${'x'.repeat((i * 37) % 200 + padding)}"},"cid":"bafy${i}"}`
      : kind === 'identity'
        ? `"identity":{"did":"${did}","handle":"h${i}.test","seq":${i}}`
        : `"account":{"active":true,"did":"${did}","seq":${i}}`;
  return { timeUs, did, kind, collection, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"${kind}",${body}}`) };
}

/** Events spaced 3 µs apart starting at `first`, so every gap has values that are no event's time_us. */
function makeEntries(count: number, first = 1_000_000, startIndex = 0, padding = 0): Entry[] {
  return Array.from({ length: count }, (_, i) => makeEntry(first + 3 * i, startIndex + i, padding));
}

/** What a reader compares: everything but the lazily made zstd frame. */
function view(entries: readonly Entry[]) {
  return entries.map((e) => ({ timeUs: e.timeUs, did: e.did, kind: e.kind, collection: e.collection, json: e.json.toString() }));
}

function open(t: TestContext, options: Partial<EventStoreOptions> & { dataDir?: string } = {}): EventStore {
  let dataDir = options.dataDir;
  if (!dataDir) {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    dataDir = dir.path;
  }
  const store = new EventStore({ hotLogBytes: 1 << 20, ...options, dataDir });
  let closed = false;
  const close = store.close.bind(store);
  store.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  t.after(() => store.close());
  return store;
}

async function commitInBatches(store: EventStore, entries: Entry[], batchSize: number, url = 'wss://relay.test'): Promise<void> {
  for (let i = 0; i < entries.length; i += batchSize) {
    const part = entries.slice(i, i + batchSize);
    await store.commit({ entries: part, cursor: { url, seq: i + part.length }, revs: new Map() });
  }
}

/** A store of `blocks` sealed 64-event blocks (and a few events in the tail), with those events. */
async function sealedBlocks(t: TestContext, blocks: number, options: { padding?: number; nowMs?: () => number } = {}): Promise<{ store: EventStore; events: Entry[] }> {
  const store = open(t, { hotLogBytes: 0, blockEvents: 64, ...(options.nowMs ? { nowMs: options.nowMs } : {}) });
  const events = makeEntries(64 * (blocks + 1), 1_000_000, 0, options.padding ?? 0);
  await commitInBatches(store, events, 320);
  await waitUntil(() => store.sealState.unsealedEvents < 64, 'the events sealed into blocks');
  return { store, events };
}

/** Replays as `reader` from `position` to the end, 40 events a read; the events it got, by time_us (each read released after it when `release`). */
function replayAs(store: EventStore, reader: number, position: number, release = false): Map<number, Entry> {
  const got = new Map<number, Entry>();
  for (;;) {
    const read = store.readAfter(position, { maxEntries: 40, reader });
    if (read.entries.length === 0) return got;
    for (const entry of read.entries) got.set(entry.timeUs, entry);
    position = read.position;
    if (release) store.release(read);
  }
}

/** Reads everything after `position` in batches of `maxEntries` until the reader catches up. */
function readAll(store: EventStore, position: number, options: { maxEntries: number; maxScanned?: number; filter?: (e: Entry) => boolean }) {
  const out: Entry[] = [];
  const positions: number[] = [];
  for (let reads = 0; reads < 100_000; reads++) {
    const result = store.readAfter(position, options);
    assert.ok(result.entries.length <= options.maxEntries, 'a read returns at most maxEntries');
    if (result.entries.length === 0 && result.position === position) return { entries: out, positions };
    assert.ok(result.position > position, 'the position only moves forward');
    position = result.position;
    positions.push(position);
    out.push(...result.entries);
  }
  throw new Error('reader never caught up');
}

const silent = pino({ level: 'silent' });

/** A hot log that holds only the newest ~12 events of makeEntries, so the rest is only on disk. */
const TINY_HOT_LOG = 12 * 200;
/** Blocks of a few events, so a few dozen events span sealed blocks, the tail and the hot log. */
const LAYOUTS = [
  { name: 'hot log holds everything', hotLogBytes: 1 << 20, blockEvents: 1024 },
  { name: 'no hot log, no blocks (the tail on disk)', hotLogBytes: 0, blockEvents: 1024 },
  { name: 'no hot log, blocks of 7 (blocks, then the tail)', hotLogBytes: 0, blockEvents: 7 },
  { name: 'tiny hot log, blocks of 5 (blocks, tail, then memory)', hotLogBytes: TINY_HOT_LOG, blockEvents: 5 },
] as const;

describe('reads: ordering, inclusive cursors, batches, filters', () => {
  const all = makeEntries(60);
  const oldest = all[0]!.timeUs;
  const newest = all[all.length - 1]!.timeUs;

  for (const layout of LAYOUTS) {
    test(`every cursor returns exactly the events at or after it, in order — ${layout.name}`, async (t) => {
      const store = open(t, { hotLogBytes: layout.hotLogBytes, blockEvents: layout.blockEvents });
      await commitInBatches(store, all, 7);
      for (let cursor = oldest - 4; cursor <= newest + 4; cursor++) {
        const { entries } = store.readAfter(cursor - 1, { maxEntries: 1_000 });
        assert.deepEqual(view(entries), view(all.filter((e) => e.timeUs >= cursor)), `cursor ${cursor}`);
      }
    });

    test(`batches by maxEntries and maxScanned report where to continue — ${layout.name}`, async (t) => {
      const store = open(t, { hotLogBytes: layout.hotLogBytes, blockEvents: layout.blockEvents });
      await commitInBatches(store, all, 9);

      const first = store.readAfter(oldest - 1, { maxEntries: 7 });
      assert.deepEqual(view(first.entries), view(all.slice(0, 7)));
      assert.equal(first.position, all[6]!.timeUs, 'a full batch ends at its last event');

      const walked = readAll(store, oldest - 1, { maxEntries: 7 });
      assert.deepEqual(view(walked.entries), view(all));
      assert.equal(walked.positions.at(-1), newest);

      // A 1-in-5 filter with at most 3 events examined per read: many reads return nothing but move on.
      const filter = (e: Entry) => e.timeUs % 5 === 0;
      const scanLimited = store.readAfter(oldest - 1, { maxEntries: 100, maxScanned: 3, filter });
      assert.equal(scanLimited.position, all[2]!.timeUs, 'stops after examining maxScanned events');
      assert.deepEqual(view(scanLimited.entries), view(all.slice(0, 3).filter(filter)));
      const filtered = readAll(store, oldest - 1, { maxEntries: 2, maxScanned: 3, filter });
      assert.deepEqual(view(filtered.entries), view(all.filter(filter)));
      assert.ok(filtered.positions.length >= all.length / 3, 'maxScanned bounded every read');

      // Nothing matches at all: the position still reaches the newest event.
      const none = readAll(store, oldest - 1, { maxEntries: 10, filter: () => false });
      assert.deepEqual(none.entries, []);
      assert.equal(none.positions.at(-1), newest);
    });

    test(`a read given an array to fill (ReadOptions.into) returns it holding its own events only, after longer reads into it too — ${layout.name}`, async (t) => {
      const store = open(t, { hotLogBytes: layout.hotLogBytes, blockEvents: layout.blockEvents });
      await commitInBatches(store, all, 11);
      const array: Entry[] = [];
      const got: Entry[] = [];
      let position = oldest - 1;
      for (let reads = 0; ; reads++) {
        // Long and short reads in turn: a short one must not leave the long one's events behind it.
        const maxEntries = reads % 2 === 0 ? 7 : 2;
        const read = store.readAfter(position, { maxEntries, into: array });
        assert.equal(read.entries, array, 'the read is in the array it was given');
        assert.deepEqual(view(read.entries), view(all.filter((e) => e.timeUs > position).slice(0, maxEntries)), `read ${reads}`);
        if (read.entries.length === 0) break;
        got.push(...read.entries);
        position = read.position;
      }
      assert.deepEqual(view(got), view(all));
    });

    test(`the filter sees each event's metadata without JSON — ${layout.name}`, async (t) => {
      const store = open(t, { hotLogBytes: layout.hotLogBytes, blockEvents: layout.blockEvents });
      await commitInBatches(store, all, 13);
      const predicates: Array<[string, (e: Entry) => boolean]> = [
        ['collection', (e) => e.collection === 'app.bsky.feed.post'],
        ['kind', (e) => e.kind === 'identity' || e.kind === 'account'],
        ['did', (e) => e.did === DIDS[2]],
        ['no collection', (e) => e.collection === null],
      ];
      for (const [name, filter] of predicates) {
        const expected = all.filter(filter);
        assert.ok(expected.length > 0 && expected.length < all.length, `${name}: the predicate is selective`);
        const { entries } = store.readAfter(oldest - 1, { maxEntries: 1_000, filter });
        assert.deepEqual(view(entries), view(expected), name);
      }
    });

    test(`future cursor: nothing yet, then what arrives after it — ${layout.name}`, async (t) => {
      const store = open(t, { hotLogBytes: layout.hotLogBytes, blockEvents: layout.blockEvents });
      await commitInBatches(store, all, 10);
      const atTip = store.readAfter(newest, { maxEntries: 100 });
      assert.deepEqual(atTip, { entries: [], position: newest });
      const future = newest + 1_000;
      const ahead = store.readAfter(future - 1, { maxEntries: 100 });
      assert.deepEqual(ahead, { entries: [], position: future - 1 });

      const later = makeEntries(20, newest + 100, 60); // spans the future cursor
      await store.commit({ entries: later, revs: new Map() });
      assert.deepEqual(view(store.readAfter(future - 1, { maxEntries: 100 }).entries), view(later.filter((e) => e.timeUs >= future)));
      assert.deepEqual(view(store.readAfter(newest, { maxEntries: 100 }).entries), view(later));
    });

    test(`too-old cursor starts at the oldest event — ${layout.name}`, async (t) => {
      const store = open(t, { hotLogBytes: layout.hotLogBytes, blockEvents: layout.blockEvents });
      await commitInBatches(store, all, 10);
      assert.deepEqual(view(store.readAfter(0, { maxEntries: 5 }).entries), view(all.slice(0, 5)));
      assert.deepEqual(view(store.readAfter(oldest - 1_000_000, { maxEntries: 5 }).entries), view(all.slice(0, 5)));

      // After retention trimmed the oldest (whole blocks of events older than all[20]), an old
      // cursor starts at the oldest remaining.
      const trimmed = await store.trimBefore(all[20]!.timeUs, 1_000);
      assert.ok(trimmed <= 20 && trimmed > 20 - layout.blockEvents, `${trimmed} trimmed`);
      assert.equal(store.trimmedUpTo, all[trimmed - 1]!.timeUs);
      assert.deepEqual(view(store.readAfter(0, { maxEntries: 5 }).entries), view(all.slice(trimmed, trimmed + 5)));
      assert.deepEqual(view(readAll(store, 0, { maxEntries: 8 }).entries), view(all.slice(trimmed)));
    });
  }

  test('the tiny hot log really splits the range: disk below its floor, memory above', async (t) => {
    const store = open(t, { hotLogBytes: TINY_HOT_LOG });
    await commitInBatches(store, all, 7);
    const floor = store.hotLog.floor;
    assert.ok(floor > oldest && floor < newest, `hot log floor ${floor} is inside the stored range`);
    assert.ok(store.hotLog.covers(floor) && !store.hotLog.covers(floor - 1));
    // One read that starts on disk and finishes in the hot log.
    const crossing = store.readAfter(oldest - 1, { maxEntries: 1_000 });
    assert.deepEqual(view(crossing.entries), view(all));
    // A batch that ends exactly at the floor, then the next read continues in memory.
    const belowFloor = all.filter((e) => e.timeUs <= floor).length;
    const toFloor = store.readAfter(oldest - 1, { maxEntries: belowFloor });
    assert.equal(toFloor.position, floor);
    assert.deepEqual(view(store.readAfter(toFloor.position, { maxEntries: 1_000 }).entries), view(all.slice(belowFloor)));
    // A batch that starts below the floor and stops just above it.
    const across = store.readAfter(floor - 4, { maxEntries: 3 });
    assert.deepEqual(view(across.entries), view(all.filter((e) => e.timeUs > floor - 4).slice(0, 3)));
  });

  test('a reader inside the hot log keeps its place while newer commits evict what it was reading', async (t) => {
    const disk = open(t, { hotLogBytes: TINY_HOT_LOG });
    const reference = open(t, { hotLogBytes: 1 << 24 });
    const stream = makeEntries(300);
    await disk.commit({ entries: stream.slice(0, 30), revs: new Map() });
    await reference.commit({ entries: stream.slice(0, 30), revs: new Map() });
    let position = stream[0]!.timeUs - 1;
    const got: Entry[] = [];
    for (let next = 30; next < stream.length; next += 15) {
      const read = disk.readAfter(position, { maxEntries: 4 });
      assert.deepEqual(view(read.entries), view(reference.readAfter(position, { maxEntries: 4 }).entries), `at ${position}`);
      got.push(...read.entries);
      position = read.position;
      await disk.commit({ entries: stream.slice(next, next + 15), revs: new Map() });
      await reference.commit({ entries: stream.slice(next, next + 15), revs: new Map() });
    }
    assert.ok(!disk.hotLog.covers(position), 'the reader fell below the hot log and reads from disk now');
    got.push(...readAll(disk, position, { maxEntries: 4 }).entries);
    assert.deepEqual(view(got), view(stream));
  });
});

describe('memory', () => {
  test("what the store keeps of a committed event's JSON is its batch's own bytes, not a slab of Node's shared buffer pool", async (t) => {
    const store = open(t);
    const batch = makeEntries(3);
    const json = batch.map((entry) => entry.json.toString());
    // Buffer.from puts small buffers in shared pool slabs: a kept view would pin the whole slab.
    assert.ok(batch.every((entry) => entry.json.buffer.byteLength === Buffer.poolSize), 'the events are built in pool slabs, as ingest builds them');
    const published: Entry[] = [];
    store.onCommitted((entries) => published.push(...entries));
    await store.commit({ entries: batch, revs: new Map() });
    const kept = store.readAfter(0, { maxEntries: 10 }).entries;
    assert.deepEqual(kept.map((entry) => entry.json.toString()), json);
    const batchBytes = json.reduce((sum, text) => sum + text.length, 0);
    for (const entry of [...kept, ...published]) {
      assert.equal(entry.json.buffer, kept[0]!.json.buffer, 'one buffer per committed batch');
      assert.ok(entry.json.buffer.byteLength < 2 * batchBytes, `the buffer behind a kept event is its batch's (${entry.json.buffer.byteLength} B for ${batchBytes} B of JSON)`);
    }
  });
});

describe('the LMDB map', () => {
  /** How many times this process maps `dataDir`'s data.mdb (Linux: /proc/self/maps). */
  const mappingsOf = (dataDir: string) => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.endsWith(join(dataDir, 'data.mdb'))).length;
  /** ~8 MB of incompressible events, so the file grows through many of lmdb-js's map doublings. */
  async function growTo8MB(store: EventStore): Promise<void> {
    const rnd = mulberry32(11);
    for (let batch = 0; batch < 20; batch++) {
      const entries = makeEntries(1_000, 1_000_000 + batch * 3_000, batch * 1_000).map((entry) => ({ ...entry, json: Buffer.from(`{"time_us":${entry.timeUs},"noise":"${Array.from({ length: 20 }, () => rnd().toString(36).slice(2)).join('')}"}`) }));
      await store.commit({ entries, revs: new Map() });
    }
  }

  test('a buffer whose map is reserved (mapSizeFor, as the gateway opens it) maps its data file once as it grows; left to grow, lmdb-js maps it once per doubling', async (t) => {
    const reserved = open(t, { mapSizeBytes: mapSizeFor(64 << 20), fsync: false });
    const grown = open(t, { fsync: false });
    await growTo8MB(reserved);
    await growTo8MB(grown);
    assert.ok(statSync(join(reserved.location.dataDir, 'data.mdb')).size > 4 << 20, 'the data file grew past 4 MB');
    assert.equal(mappingsOf(reserved.location.dataDir), 1, 'one map of the reserved buffer');
    assert.ok(mappingsOf(grown.location.dataDir) > 4, `lmdb-js keeps every map it outgrew (${mappingsOf(grown.location.dataDir)})`);
    assert.equal(readAll(reserved, 0, { maxEntries: 4_096 }).entries.length, 20_000, 'every event reads back through the one map');
  });
});

describe('event sizes', () => {
  test('events from a few bytes to 1 MB read back intact from disk, also when held across later reads', async (t) => {
    const sizes = [0, 1, 100, 4_000, 16_383, 16_385, 70_000, 300_000, 1_000_000, 10, 50_000, 5];
    const events = sizes.map((padding, i) => makeEntry(2_000_000 + i * 10, i, padding));
    const disk = open(t, { hotLogBytes: 0 });
    await disk.commit({ entries: events, cursor: { url: 'wss://relay.test', seq: 1 }, revs: new Map() });
    const held: Entry[] = [];
    let position = 0;
    for (;;) {
      const read = disk.readAfter(position, { maxEntries: 2 });
      if (read.position === position) break;
      held.push(...read.entries);
      position = read.position;
      // Reads in between reuse lmdb's read buffer: what was returned must not change.
      disk.readAfter(0, { maxEntries: 5 });
    }
    assert.deepEqual(view(held), view(events));
    for (const entry of held) JSON.parse(entry.json.toString());
  });
});


describe('durability', () => {
  test('reopening keeps the events, the upstream cursor, the last time_us and the revs', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const first = open(t, { dataDir: dir.path });
    const events = makeEntries(40);
    await first.commit({
      entries: events.slice(0, 25),
      cursor: { url: 'wss://relay.test', seq: 120 },
      revs: new Map([
        [DIDS[0], '3laaaaaaaaaa2'],
        [DIDS[1], '3lbbbbbbbbbb2'],
      ]),
    });
    await first.commit({ entries: events.slice(25), cursor: { url: 'wss://relay.test', seq: 130 }, revs: new Map([[DIDS[0], '3laaaaaaaaaa7']]) });
    // A batch of frames that made no events (all skipped) still moves the cursor.
    await first.commit({ entries: [], cursor: { url: 'wss://relay.test', seq: 131 }, revs: new Map() });
    assert.equal(first.lastTimeUs, events.at(-1)!.timeUs);
    await first.close();

    const second = open(t, { dataDir: dir.path, hotLogBytes: 1 << 20 });
    assert.deepEqual(second.upstreamCursor, { url: 'wss://relay.test', seq: 131 });
    assert.equal(second.lastTimeUs, events.at(-1)!.timeUs);
    assert.equal(second.getRev(DIDS[0]), '3laaaaaaaaaa7');
    assert.equal(second.getRev(DIDS[1]), '3lbbbbbbbbbb2');
    assert.equal(second.getRev(DIDS[2]), undefined);
    assert.equal(second.hotLog.bytes, 0, 'the hot log starts empty');
    assert.equal(second.hotLog.floor, events.at(-1)!.timeUs, 'and covers only what comes next');
    assert.deepEqual(view(second.readAfter(0, { maxEntries: 1_000 }).entries), view(events));

    // New events land after the old ones; a read crosses from disk into the new hot log.
    const more = makeEntries(10, events.at(-1)!.timeUs + 10, 40);
    await second.commit({ entries: more, cursor: { url: 'wss://relay.test', seq: 140 }, revs: new Map() });
    assert.deepEqual(view(second.readAfter(events[30]!.timeUs, { maxEntries: 1_000 }).entries), view([...events.slice(31), ...more]));
  });

  test('a commit (one tail run) partly sealed into a block is read once: from memory, after reopening, and by a snapshot reader; sealed whole, it leaves the tail', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const events = makeEntries(40);
    const readsEachOnce = (store: EventStore, upTo: number) => {
      const stored = events.slice(0, upTo);
      for (const from of [0, 20, 24, 25, 26, 27, 28]) {
        const position = events[from]!.timeUs - 1;
        const expected = view(stored.slice(from));
        assert.deepEqual(view(readAll(store, position, { maxEntries: 3 }).entries), expected, `the store, from event ${from}`);
        const reader = new SnapshotReader(store.location, 1 << 20);
        const snapshot = reader.read(position, stored.at(-1)!.timeUs, { maxEntries: 1_000, ...store.indexState });
        void reader.close();
        assert.ok(!snapshot.trimmed);
        assert.deepEqual(view(snapshot.entries), expected, `a snapshot reader, from event ${from}`);
      }
    };
    // Blocks of 7 seal events 0–27; the commit of events 25–29 is sealed up to 27.
    const first = open(t, { dataDir: dir.path, hotLogBytes: 0, blockEvents: 7 });
    await commitInBatches(first, events.slice(0, 30), 5);
    readsEachOnce(first, 30);
    await first.close();
    const second = open(t, { dataDir: dir.path, hotLogBytes: 0, blockEvents: 7 });
    assert.equal(second.span().eventCount, 30);
    readsEachOnce(second, 30);
    // The next block (events 28–34) seals the rest of that commit: it leaves the tail table.
    await second.commit({ entries: events.slice(30), revs: new Map() });
    readsEachOnce(second, 40);
    await second.close();
    const raw = openLmdb({ path: dir.path, maxDbs: 16 });
    const tailKeys = [...raw.openDB<Buffer, number>({ name: 'tail', encoding: 'binary' }).getKeys()];
    await raw.close();
    assert.deepEqual(tailKeys, [events[39]!.timeUs], 'only the commit of events 30–39 (35–39 unsealed) is left in the tail');
    const third = open(t, { dataDir: dir.path, hotLogBytes: 0, blockEvents: 7 });
    assert.equal(third.span().eventCount, 40);
    readsEachOnce(third, 40);
  });

  test('a buffer written before the tail was kept in runs (one tail value per event) reads each event once, seals on, and reopens whole', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const events = makeEntries(40);
    const first = open(t, { dataDir: dir.path, hotLogBytes: 0, blockEvents: 7 });
    await commitInBatches(first, events.slice(0, 30), 5);
    await first.close();
    // Rewrite the tail the way contrail wrote it before runs: each unsealed event (blocks of 7 sealed
    // events 0–27) its own value, keyed by its time_us, with no checksum (read unchecked: tail-runs.ts).
    const sealedUpTo = events[27]!.timeUs;
    const raw = openLmdb({ path: dir.path, maxDbs: 16 });
    const tail = raw.openDB<Buffer, number>({ name: 'tail', encoding: 'binary' });
    const runs = [...tail.getRange()].map(({ key, value }) => ({ key, value: Buffer.from(value) }));
    await raw.transaction(() => {
      for (const run of runs) {
        tail.removeSync(run.key);
        for (const entry of readRun(run.value)) if (entry.timeUs > sealedUpTo) tail.putSync(entry.timeUs, encodeRecords([entry]));
      }
    });
    const perEvent = [...tail.getKeys()];
    await raw.close();
    assert.deepEqual(perEvent, events.slice(28, 30).map((e) => e.timeUs), 'the unsealed events 28–29, one value each');

    const second = open(t, { dataDir: dir.path, hotLogBytes: 0, blockEvents: 7 });
    assert.equal(second.span().eventCount, 30);
    for (const from of [0, 27, 28, 29]) {
      assert.deepEqual(view(readAll(second, events[from]!.timeUs - 1, { maxEntries: 3 }).entries), view(events.slice(from, 30)), `from event ${from}`);
    }
    await second.commit({ entries: events.slice(30), revs: new Map() });
    await second.close();
    const third = open(t, { dataDir: dir.path, hotLogBytes: 0, blockEvents: 7 });
    assert.equal(third.span().eventCount, 40);
    assert.deepEqual(view(readAll(third, 0, { maxEntries: 3 }).entries), view(events));
  });

  test('the last issued time_us survives even when retention removed every event', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const first = open(t, { dataDir: dir.path });
    const events = makeEntries(10);
    await first.commit({ entries: events, cursor: { url: 'wss://relay.test', seq: 10 }, revs: new Map() });
    assert.equal(await first.trimBefore(Number.MAX_SAFE_INTEGER, 100), 10);
    await first.close();
    const second = open(t, { dataDir: dir.path });
    assert.equal(second.span().eventCount, 0);
    assert.equal(second.lastTimeUs, events.at(-1)!.timeUs, 'the clock must not reissue a time_us a client may hold');
    assert.equal(second.trimmedUpTo, events.at(-1)!.timeUs);
  });

  test('a commit that fails inside its transaction leaves nothing behind: no events, cursor, revs or time_us', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const store = open(t, { dataDir: dir.path });
    const events = makeEntries(20);
    await store.commit({ entries: events.slice(0, 10), cursor: { url: 'wss://relay.test', seq: 10 }, revs: new Map([[DIDS[0], 'rev-1']]) });
    const seen: Entry[] = [];
    store.onCommitted((entries) => seen.push(...entries));

    // LMDB rejects the second rev write (a number where the revs database holds strings), after
    // the batch's events and the first rev were already written in the same transaction.
    const poisoned = new Map<string, string>([
      [DIDS[0], 'rev-2'],
      [DIDS[1], 42 as unknown as string],
    ]);
    await assert.rejects(store.commit({ entries: events.slice(10), cursor: { url: 'wss://relay.test', seq: 20 }, revs: poisoned }));

    const check = (s: EventStore) => {
      assert.deepEqual(view(s.readAfter(0, { maxEntries: 1_000 }).entries), view(events.slice(0, 10)));
      assert.deepEqual(s.upstreamCursor, { url: 'wss://relay.test', seq: 10 });
      assert.equal(s.lastTimeUs, events[9]!.timeUs);
      assert.equal(s.getRev(DIDS[0]), 'rev-1');
      assert.equal(s.span().eventCount, 10);
    };
    check(store);
    assert.deepEqual(seen, [], 'listeners never hear of a failed batch');
    await store.close();
    check(open(t, { dataDir: dir.path }));
  });

  test('a DID of the longest valid length (2048 characters) commits and keeps its rev', async (t) => {
    // LMDB keys are at most 1978 bytes; DIDs may be 2048 characters long.
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const store = open(t, { dataDir: dir.path });
    const longDid = `did:web:${'a'.repeat(2048 - 'did:web:'.length)}`;
    const entry: Entry = { ...makeEntry(5_000_000, 0), did: longDid };
    await store.commit({ entries: [entry], cursor: { url: 'wss://relay.test', seq: 1 }, revs: new Map([[longDid, '3lzzzzzzzzzz2']]) });
    assert.equal(store.getRev(longDid), '3lzzzzzzzzzz2');
    assert.equal(store.getRev(`${longDid.slice(0, -1)}b`), undefined, 'a different long DID does not share the rev');
    await store.close();
    const reopened = open(t, { dataDir: dir.path });
    assert.equal(reopened.getRev(longDid), '3lzzzzzzzzzz2');
    assert.equal(reopened.readAfter(0, { maxEntries: 10 }).entries[0]!.did, longDid);
  });
});

describe('seq: unique, strictly increasing, never reused, resolvable to a time_us', () => {
  test('commit numbers events 1, 2, 3…; they are read back with the events, from disk and memory, and continue after a reopen', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const first = open(t, { dataDir: dir.path, hotLogBytes: TINY_HOT_LOG });
    const events = makeEntries(50);
    await commitInBatches(first, events, 7);
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
    assert.deepEqual(first.readAfter(0, { maxEntries: 100 }).entries.map((e) => e.seq), events.map((_, i) => i + 1));
    assert.equal(first.lastSeq, 50);
    await first.close();
    const second = open(t, { dataDir: dir.path });
    assert.equal(second.lastSeq, 50);
    const more = makeEntries(5, events.at(-1)!.timeUs + 10, 50);
    await second.commit({ entries: more, revs: new Map() });
    assert.deepEqual(second.readAfter(events[47]!.timeUs, { maxEntries: 100 }).entries.map((e) => e.seq), [49, 50, 51, 52, 53, 54, 55]);
  });

  test('seqs are never reused, even after retention removed every event and the store reopened', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const first = open(t, { dataDir: dir.path });
    const events = makeEntries(10);
    await first.commit({ entries: events, revs: new Map() });
    assert.equal(await first.trimBefore(Number.MAX_SAFE_INTEGER, 100), 10);
    await first.close();
    const second = open(t, { dataDir: dir.path });
    assert.equal(second.lastSeq, 10);
    const more = makeEntries(2, events.at(-1)!.timeUs + 10, 10);
    await second.commit({ entries: more, revs: new Map() });
    assert.deepEqual(more.map((e) => e.seq), [11, 12]);
  });

  test('atSeq: each seq resolves to its event; a trimmed seq to the oldest kept; a future seq to undefined', async (t) => {
    const store = open(t, { hotLogBytes: 0 });
    const events = makeEntries(300);
    await commitInBatches(store, events, 40);
    for (const event of events) assert.equal(store.atSeq(event.seq!)?.timeUs, event.timeUs, `seq ${event.seq}`);
    assert.equal(store.atSeq(0)?.timeUs, events[0]!.timeUs);
    assert.equal(store.atSeq(301)?.timeUs, undefined, 'no event has it yet: the cursor is live');
    await store.trimBefore(events[100]!.timeUs, 1_000);
    assert.equal(store.atSeq(1)?.timeUs, events[100]!.timeUs, 'the oldest kept event');
    assert.equal(store.atSeq(150)?.timeUs, events[149]!.timeUs);
  });

  test('oldest() names the oldest stored event (time_us and seq) without reading a block: in a block, in the tail alone, after trims, none when empty', async (t) => {
    const store = open(t, { hotLogBytes: 0, blockEvents: 8 });
    assert.equal(store.oldest(), undefined);
    const events = makeEntries(5);
    await commitInBatches(store, events, 5);
    assert.deepEqual(store.oldest(), { timeUs: events[0]!.timeUs, seq: 1 }, 'the tail alone');
    const more = makeEntries(40, events[4]!.timeUs + 3, 5);
    await commitInBatches(store, more, 20);
    await waitUntil(() => store.sealState.unsealedEvents < 8, 'the events sealed into blocks');
    assert.deepEqual(store.oldest(), { timeUs: events[0]!.timeUs, seq: 1 }, 'in the first block');
    assert.equal(await store.trimOldest(100), 8);
    // Retention reads the block it removes (its index postings): oldest() reads none.
    const read = store.partitionsRead;
    assert.deepEqual(store.oldest(), { timeUs: more[3]!.timeUs, seq: 9 }, 'after a block was removed');
    assert.equal(store.partitionsRead, read, 'no block was read');
    const mergedBefore = store.partitionsRead;
    assert.equal(store.atSeq(12)?.timeUs, more[6]!.timeUs);
    assert.ok(store.partitionsRead > mergedBefore, 'atSeq reads a block: the count sees it');
  });

  test("a sealed block's partitions are read back merged in time_us order: consecutive seqs or a leader's with gaps, the whole block or some collections, read once or again", async (t) => {
    const selection = (collections: string[]) => ({ dids: new Set<string>(), collections: new Set(collections), prefixes: [] });
    const check = (store: EventStore, events: Entry[]) => {
      // Twice: the second read of a whole block comes from the merged blocks kept.
      for (let pass = 0; pass < 2; pass++) {
        assert.deepEqual(view(store.readAfter(0, { maxEntries: 1_000 }).entries), view(events), `everything, pass ${pass}`);
        const wanted = ['app.bsky.feed.like', 'app.bsky.graph.follow'];
        const kept = events.filter((e) => e.collection === null || wanted.includes(e.collection));
        const filter = (e: Entry) => e.collection === null || wanted.includes(e.collection);
        assert.deepEqual(view(store.readAfter(0, { maxEntries: 1_000, filter, select: selection(wanted) }).entries), view(kept), `two collections, pass ${pass}`);
      }
    };
    const local = open(t, { hotLogBytes: 0, blockEvents: 64 });
    const events = makeEntries(200);
    await commitInBatches(local, events, 30);
    check(local, events);

    const replicated = open(t, { hotLogBytes: 0, blockEvents: 64 });
    const assigned = makeEntries(200);
    assigned.forEach((e, i) => (e.seq = 10 + i + Math.floor(i / 7)));
    for (let i = 0; i < assigned.length; i += 30) await replicated.commitAssigned({ entries: assigned.slice(i, i + 30), revs: new Map() });
    check(replicated, assigned);
  });

  test("a read's events stay intact until it is released, while the slabs of released reads are filled again with the right events", async (t) => {
    // ~13 MB of decompressed partitions: several times the slabs a scan has in use at once (the
    // merges kept pin theirs: at most 32, small blocks keep that to ~2 MB).
    const store = open(t, { hotLogBytes: 0, blockEvents: 64 });
    const events = makeEntries(12_000, 1_000_000, 0, 1_000);
    await commitInBatches(store, events, 500);
    const held = store.readAfter(0, { maxEntries: 300 });
    const heldBefore = view(held.entries);
    // Views copied as read: a released read's bytes are reused.
    const read = [...heldBefore];
    const buffers = new Set<ArrayBufferLike>();
    let position = held.position;
    for (;;) {
      const next = store.readAfter(position, { maxEntries: 512 });
      if (next.entries.length === 0) break;
      // Slabs only (the unsealed tail's events are the committed buffers).
      for (const entry of next.entries) if (entry.json.buffer.byteLength === SLAB_BYTES) buffers.add(entry.json.buffer);
      read.push(...view(next.entries));
      position = next.position;
      store.release(next);
    }
    assert.deepEqual(read, view(events), 'every event read once, in order, with its own bytes');
    assert.deepEqual(view(held.entries), heldBefore, 'the unreleased read kept its bytes while ~13 MB went through');
    assert.deepEqual(heldBefore, view(events.slice(0, 300)));
    const decompressedBytes = events.reduce((sum, e) => sum + e.json.byteLength, 0);
    assert.ok(buffers.size > 0 && buffers.size * SLAB_BYTES < decompressedBytes / 2, `${buffers.size} slabs held ${decompressedBytes} bytes over time: released slabs were reused`);
    store.release(held);
  });

  test("a whole block's merge is kept while a replay behind it will read it, not after: a trailing replay gets the leader's events, one that starts after a lone replay passed gets the block merged again", async (t) => {
    const { store, events } = await sealedBlocks(t, 24);
    const replay = (reader: number, position: number) => replayAs(store, reader, position);
    // 24 blocks sealed, fewer than are kept at most: the trailing replay is one event behind the leader's start.
    const trailingStart = store.readAfter(0, { maxEntries: 1, reader: 1 });
    const leader = replay(2, 0);
    const trailing = replay(1, trailingStart.position);
    assert.equal(trailing.size, events.length - 1);
    const sealed = [...trailing].filter(([timeUs]) => timeUs <= events[64 * 24 - 1]!.timeUs);
    assert.ok(sealed.length > 64 * 23, 'the trailing replay read the sealed blocks');
    for (const [timeUs, entry] of sealed) assert.equal(entry, leader.get(timeUs), `event ${timeUs}: the trailing replay got the leader's merge`);
    // A lone replay through every block keeps none it has read past: a replay starting later merges its blocks again.
    const lone = replay(3, 0);
    for (const block of [0, 12]) {
      const first = events[64 * block]!.timeUs;
      const later = store.readAfter(first - 1, { maxEntries: 1, reader: 4 });
      assert.equal(later.entries[0]!.timeUs, first);
      assert.notEqual(later.entries[0], lone.get(first), `block ${block} was merged again, not kept after the lone replay passed it`);
    }
  });

  test("a replay further behind the leader than merges are kept gets the leader's merges nearest it; one that says it is done holds none back", async (t) => {
    const { store, events } = await sealedBlocks(t, 80);
    const replay = (reader: number, position: number) => replayAs(store, reader, position);
    // 80 blocks sealed: the leader merges far more blocks than are kept while the trailing replay waits in the first.
    const trailingStart = store.readAfter(0, { maxEntries: 1, reader: 1 });
    const leader = replay(2, 0);
    const trailing = replay(1, trailingStart.position);
    assert.equal(trailing.size, events.length - 1);
    for (let block = 0; block < 16; block++) {
      const first = events[64 * block + 1]!.timeUs;
      assert.equal(trailing.get(first), leader.get(first), `block ${block}: the trailing replay got the leader's merge`);
    }

    // A replay that stops (its subscriber left) and says so keeps nothing back for itself.
    const waiting = store.readAfter(0, { maxEntries: 1, reader: 3 });
    const passing = replay(4, 0);
    store.readerDone(3);
    const first = events[64 * 5]!.timeUs;
    const again = store.readAfter(first - 1, { maxEntries: 1, reader: 5 });
    assert.equal(waiting.entries.length, 1);
    assert.notEqual(again.entries[0], passing.get(first), 'block 5 was merged again: nothing kept it for the replay that left');
  });

  test("a replay quiet for longer than READER_TTL_MS holds no merges back, and the read that forgets it gets intact events", async (t) => {
    let nowMs = 0;
    // ~2 KB events: a 1 MiB slab holds about 7 blocks, so the 40 blocks span several slabs.
    const { store, events } = await sealedBlocks(t, 40, { padding: 2_000, nowMs: () => nowMs });
    const replayReleasing = (reader: number, position: number) => replayAs(store, reader, position, true);
    const blockStart = (block: number) => events[64 * block]!.timeUs - 1;

    // Replay 1 reads one event and goes quiet; replay 2 passes it, and its merges are kept for replay 1.
    const quiet = store.readAfter(0, { maxEntries: 1, reader: 1 });
    store.release(quiet);
    const passing = replayReleasing(2, 0);
    store.readerDone(2);
    nowMs += 9_000;
    const withinTtl = store.readAfter(blockStart(10), { maxEntries: 1, reader: 3 });
    assert.equal(withinTtl.entries[0], passing.get(events[64 * 10]!.timeUs), 'within the TTL, block 10 was kept for the quiet replay');
    store.release(withinTtl);
    store.readerDone(3);

    // Past the TTL the quiet replay is forgotten as it reads again: its own block is merged anew, not
    // handed out from a merge dropped in the same read (whose slabs would go back to the pool) …
    nowMs += 2_000;
    const resumed = store.readAfter(quiet.position, { maxEntries: 40, reader: 1 });
    const resumedJson = resumed.entries.map((e) => e.json);
    // … and other blocks are merged anew too, into slabs taken from the pool, which must not be the resumed read's.
    const again = store.readAfter(blockStart(10), { maxEntries: 1, reader: 4 });
    assert.notEqual(again.entries[0], passing.get(events[64 * 10]!.timeUs), 'past the TTL, nothing kept block 10');
    replayReleasing(5, 0);
    assert.deepEqual(
      resumedJson.map((json) => json.toString()),
      events.slice(1, 41).map((e) => e.json.toString()),
      "the resumed read's events still hold their bytes after other reads refilled the pool's slabs",
    );
  });

  test("a collection filter's cached partitions hold only their own bytes, however full replays interleave with it", async (t) => {
    const store = open(t, { hotLogBytes: 0, blockEvents: 64 });
    const events = makeEntries(12_000, 1_000_000, 0, 1_000);
    await commitInBatches(store, events, 500);
    const wanted = 'app.bsky.feed.repost';
    const select = { dids: new Set<string>(), collections: new Set([wanted]), prefixes: [] };
    const filter = (e: Entry) => e.collection === null || e.collection === wanted;
    // A full replay (released as it goes, so its slabs are reused) and a filtered one (kept) take turns.
    const kept: Entry[] = [];
    let full = 0;
    let filtered = 0;
    for (let turn = 0; turn < 10_000; turn++) {
      const scan = store.readAfter(full, { maxEntries: 256 });
      if (scan.entries.length > 0) full = scan.position;
      store.release(scan);
      const read = store.readAfter(filtered, { maxEntries: 32, filter, select });
      if (read.entries.length === 0) break;
      kept.push(...read.entries);
      filtered = read.position;
    }
    assert.deepEqual(view(kept), view(events.filter(filter)), 'the filtered replay got its events, in order');
    const keptBytes = kept.reduce((sum, e) => sum + e.json.byteLength, 0);
    const heldBytes = [...new Set(kept.map((e) => e.json.buffer))].reduce((sum, buffer) => sum + buffer.byteLength, 0);
    // Their partitions' other events, identity and account events' partitions, and the tail's commit buffers: well under 3×.
    assert.ok(heldBytes < 3 * keptBytes, `${keptBytes} bytes of filtered events hold ${heldBytes} bytes of buffers`);
  });

  test('commitAssigned writes time_us and seq as given (a leader may skip seqs) and refuses a batch that does not increase', async (t) => {
    const store = open(t);
    const seen: Entry[] = [];
    store.onCommitted((entries) => seen.push(...entries));
    const events = makeEntries(6) as [Entry, Entry, Entry, Entry, Entry, Entry];
    events.forEach((e, i) => (e.seq = 100 + 2 * i));
    await store.commitAssigned({ entries: events.slice(0, 4), revs: new Map() });
    assert.deepEqual(store.readAfter(0, { maxEntries: 10 }).entries.map((e) => e.seq), [100, 102, 104, 106]);
    assert.equal(store.atSeq(101)?.timeUs, events[1].timeUs);

    const stale = [{ ...events[4] }, { ...events[5], seq: 106 }];
    await assert.rejects(store.commitAssigned({ entries: stale, revs: new Map() }), /seq 106.*must increase strictly/);
    const backwards = [{ ...events[4], timeUs: events[3].timeUs }];
    await assert.rejects(store.commitAssigned({ entries: backwards, revs: new Map() }), /time_us/);
    await assert.rejects(store.commitAssigned({ entries: [{ ...events[4], seq: undefined }], revs: new Map() }), /seq undefined/);
    assert.equal(store.lastSeq, 106, 'a refused batch writes nothing');
    assert.equal(seen.length, 4);

    await store.commit({ entries: events.slice(4), revs: new Map() });
    assert.deepEqual(events.slice(4).map((e) => e.seq), [107, 108], 'commit continues after the assigned seqs');
  });

  test('a buffer written by an older contrail (no format, events without seq) is refused with the reason, and left as it was', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    // Format 1, as contrail wrote it before seq: u8 kind | u16 didLength | did | u16 collectionLength | collection | json.
    const legacy = openLmdb({ path: dir.path, maxDbs: 4 });
    const events = legacy.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
    const did = DIDS[0];
    const json = Buffer.from(`{"did":"${did}","time_us":1000,"kind":"identity","identity":{"did":"${did}","seq":1}}`);
    const header = Buffer.alloc(5 + did.length);
    header[0] = 1;
    header.writeUInt16BE(did.length, 1);
    header.write(did, 3, 'latin1');
    await events.put(1000, Buffer.concat([header, json]));
    await legacy.openDB({ name: 'meta' }).put('upstreamCursor', { url: 'wss://relay.test', seq: 1 });
    await legacy.close();
    const before = readFileSync(join(dir.path, 'data.mdb'));

    assert.throws(() => new EventStore({ dataDir: dir.path, hotLogBytes: 0 }), /written by an older contrail \(store format 1.*Move that folder aside/);
    assert.throws(() => new EventStore({ dataDir: dir.path, hotLogBytes: 0, readOnly: true }), /older contrail/);
    assert.ok(readFileSync(join(dir.path, 'data.mdb')).equals(before), 'the old buffer is untouched');
    assert.equal(existsSync(join(dir.path, 'contrail-run.json')), false, 'a refused start leaves no run marker behind');
  });
});

describe('data dir', () => {
  test('a data dir whose name has a dot (an existing folder, or a new one) holds data.mdb inside it', async (t) => {
    const parent = tempDir('contrail-store-');
    t.after(() => parent.remove());
    for (const name of ['existing.d', 'new.buffer']) {
      const dataDir = join(parent.path, name);
      if (name === 'existing.d') mkdirSync(dataDir);
      const store = open(t, { dataDir });
      await store.commit({ entries: makeEntries(3), cursor: { url: 'wss://relay.test', seq: 3 }, revs: new Map() });
      await store.close();
      assert.ok(statSync(join(dataDir, 'data.mdb')).isFile(), `${name}/data.mdb`);
      assert.equal(open(t, { dataDir }).span().eventCount, 3);
    }
  });
});

describe('span()', () => {
  test('reports the oldest and newest time_us, the count, and page bytes that grow and shrink', async (t) => {
    const store = open(t);
    assert.deepEqual(store.span(), { oldestTimeUs: undefined, newestTimeUs: undefined, eventCount: 0, bytes: 0 });
    const events = makeEntries(2_000, 7_000_000, 0, 300);
    await commitInBatches(store, events, 250);
    const full = store.span();
    assert.equal(full.oldestTimeUs, events[0]!.timeUs);
    assert.equal(full.newestTimeUs, events.at(-1)!.timeUs);
    assert.equal(full.eventCount, 2_000);
    const payload = events.reduce((sum, e) => sum + e.json.byteLength, 0);
    assert.ok(full.bytes > 0, 'pages are counted');
    assert.ok(full.bytes < payload * 3, `page bytes ${full.bytes} are not wildly more than the payload ${payload}`);
    assert.equal(full.bytes % 4096, 0, 'whole pages');

    await store.trimBefore(events[1_500]!.timeUs, 10_000);
    const trimmed = store.span();
    assert.equal(trimmed.oldestTimeUs, events[1_500]!.timeUs);
    assert.equal(trimmed.newestTimeUs, full.newestTimeUs);
    assert.equal(trimmed.eventCount, 500);
    assert.ok(trimmed.bytes < full.bytes / 2, `trimming 3/4 of the events frees pages (${trimmed.bytes} of ${full.bytes})`);
  });
});

describe('retention', () => {
  /** An EventStore that records the size of every trim (the real trims still run). */
  class CountingStore extends EventStore {
    readonly trims: number[] = [];
    override async trimBefore(before: number, maxEvents: number): Promise<number> {
      const n = await super.trimBefore(before, maxEvents);
      if (n > 0) this.trims.push(n);
      return n;
    }
    override async trimOldest(maxEvents: number): Promise<number> {
      const n = await super.trimOldest(maxEvents);
      if (n > 0) this.trims.push(n);
      return n;
    }
  }

  const MINUTE_US = 60_000_000;
  const T0_US = Date.UTC(2026, 0, 1) * 1000;
  const rnd = mulberry32(7);
  /** Events whose JSON does not compress away, so sizes on disk mean something. */
  function incompressible(count: number, first: number): Entry[] {
    return makeEntries(count, first).map((e) => {
      const noise = Buffer.from(Array.from({ length: 300 }, () => Math.floor(rnd() * 256))).toString('base64');
      return { ...e, json: Buffer.from(e.json.toString().replace(/"record":\{"text":"x*"/, `"record":{"text":"${noise}"`)) };
    });
  }

  test("removing a block does not push a filtered replay's partitions out of the block cache", async (t) => {
    const wanted = 'app.bsky.feed.repost';
    const select = { dids: new Set<string>(), collections: new Set([wanted]), prefixes: [] };
    const filter = (e: Entry) => e.collection === null || e.collection === wanted;
    const events = makeEntries(64 * 8, 1_000_000, 0, 1_000);
    // Room for block 5's two wanted partitions and less than any of block 0's commit partitions (~18 KB each) beside them.
    const block5 = events.slice(64 * 5, 64 * 6);
    const cacheBytes = Math.round(1.2 * (encodeRecords(block5.filter((e) => e.collection === null)).length + encodeRecords(block5.filter((e) => e.collection === wanted)).length));
    const store = open(t, { hotLogBytes: 0, blockEvents: 64, blockCacheBytes: cacheBytes });
    await commitInBatches(store, events, 128);
    await waitUntil(() => store.sealState.unsealedEvents < 64, 'the events sealed into blocks');
    const readBlock5 = () => store.readAfter(block5[0]!.timeUs - 1, { maxEntries: 8, filter, select }).entries;
    const before = readBlock5();
    assert.equal(before[0]!.timeUs, block5.find(filter)!.timeUs);
    assert.equal(await store.trimOldest(1_000), 64);
    const after = readBlock5();
    assert.deepEqual(view(after), view(before));
    assert.equal(after[0], before[0], 'the same decoded events: block 5\'s partitions stayed cached while block 0 was removed');
  });

  test('by age, with an injected clock: trims whole blocks of expired events, advances and persists trimmedUpTo', async (t) => {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const store = new CountingStore({ dataDir: dir.path, hotLogBytes: 1 << 20, blockEvents: 8 });
    t.after(() => store.close().catch(() => {}));
    // One event a minute for 100 minutes: 12 blocks of 8, then 4 in the tail.
    const events = Array.from({ length: 100 }, (_, i) => makeEntry(T0_US + i * MINUTE_US, i));
    await commitInBatches(store, events, 25);

    const registry = new Registry();
    const metrics = createStoreMetrics(registry);
    let nowMs = T0_US / 1000 + 100 * 60_000;
    const retention = new Retention({ store, maxAgeMs: 30 * 60_000, maxBytes: 1e12, logger: silent, metrics, chunkSize: 8, now: () => nowMs });
    await retention.runOnce();
    // Cutoff = minute 70: blocks 0..7 (minutes 0..63) are wholly older; block 8 (64..71) holds the cutoff and stays.
    assert.equal(store.span().eventCount, 36);
    assert.equal(store.span().oldestTimeUs, events[64]!.timeUs);
    assert.equal(store.trimmedUpTo, events[63]!.timeUs);
    assert.deepEqual(store.trims, [8, 8, 8, 8, 8, 8, 8, 8], 'a block per step');
    assert.equal((await metrics.eventsTrimmed.get()).values.find((v) => v.labels.bound === 'age')?.value, 64);
    assert.deepEqual(view(store.readAfter(0, { maxEntries: 1_000 }).entries), view(events.slice(64)), 'the hot log forgot them too');

    // Nothing more to do at the same time; ten minutes later, two more blocks go.
    await retention.runOnce();
    assert.equal(store.span().eventCount, 36);
    nowMs += 10 * 60_000;
    await retention.runOnce();
    assert.equal(store.span().oldestTimeUs, events[80]!.timeUs);
    assert.equal(store.trimmedUpTo, events[79]!.timeUs);
    // An hour later everything is past the age bound, the tail included: age may empty the buffer.
    nowMs += 60 * 60_000;
    await retention.runOnce();
    assert.equal(store.span().eventCount, 0);
    assert.equal(store.trimmedUpTo, events[99]!.timeUs);
    await retention.stop();
    await store.close();

    const reopened = open(t, { dataDir: dir.path });
    assert.equal(reopened.trimmedUpTo, events[99]!.timeUs);
    assert.deepEqual(reopened.readAfter(0, { maxEntries: 1_000 }).entries, []);
  });

  for (const blockEvents of [100, 4_000]) {
    test(`by size: stays within the bound, keeping the newest events — ${blockEvents === 100 ? 'blocks' : 'the unsealed tail'}`, async (t) => {
      const dir = tempDir('contrail-store-');
      t.after(() => dir.remove());
      const store = new CountingStore({ dataDir: dir.path, hotLogBytes: 1 << 24, blockEvents });
      t.after(() => store.close().catch(() => {}));
      const events = incompressible(3_000, T0_US);
      await commitInBatches(store, events, 500);
      const before = store.span();
      const maxBytes = 256 * 1024;
      assert.ok(before.bytes > 4 * maxBytes, `the buffer (${before.bytes} bytes) is well over the bound`);

      const registry = new Registry();
      const metrics = createStoreMetrics(registry);
      // Age does not bite: the clock says the newest event is a second old.
      const now = () => events.at(-1)!.timeUs / 1000 + 1_000;
      const retention = new Retention({ store, maxAgeMs: 3_600_000, maxBytes, logger: silent, metrics, chunkSize: 100, now });
      await retention.runOnce();
      const after = store.span();
      assert.ok(after.bytes <= maxBytes, `${after.bytes} <= ${maxBytes}`);
      assert.ok(after.bytes > maxBytes / 2, `${after.bytes}: not trimmed far below the bound`);
      assert.ok(after.eventCount > 0 && after.eventCount < 3_000);
      const kept = events.slice(3_000 - after.eventCount);
      assert.equal(after.oldestTimeUs, kept[0]!.timeUs);
      assert.equal(after.newestTimeUs, events.at(-1)!.timeUs);
      assert.equal(store.trimmedUpTo, events[3_000 - after.eventCount - 1]!.timeUs);
      assert.ok(store.trims.length >= 2 && store.trims.every((n) => n <= 100), `in steps: ${store.trims}`);
      const trimmedBySize = (await metrics.eventsTrimmed.get()).values.find((v) => v.labels.bound === 'size')?.value;
      assert.equal(trimmedBySize, 3_000 - after.eventCount);
      assert.deepEqual(view(readAll(store, 0, { maxEntries: 500 }).entries), view(kept), 'disk and hot log agree on what is left');
      await retention.stop();
      // A tail run retention cut into was stored again with what it kept.
      await store.close();
      const reopened = open(t, { dataDir: dir.path, blockEvents });
      assert.deepEqual(view(readAll(reopened, 0, { maxEntries: 500 }).entries), view(kept), 'the reopened buffer holds the same');
    });
  }

  test('a size bound smaller than one event never empties the buffer: the newest event stays', async (t) => {
    const store = open(t, { blockEvents: 10 });
    const events = incompressible(25, T0_US);
    await commitInBatches(store, events, 5);
    const metrics = createStoreMetrics(new Registry());
    const now = () => events.at(-1)!.timeUs / 1000;
    const retention = new Retention({ store, maxAgeMs: 3_600_000, maxBytes: 1, logger: silent, metrics, now });
    await retention.runOnce();
    assert.equal(store.span().eventCount, 1);
    assert.deepEqual(view(store.readAfter(0, { maxEntries: 100 }).entries), view(events.slice(-1)));
  });

  test('the size bound is checked after every commit, not only every interval: a burst cannot outgrow it', async (t) => {
    const store = open(t, { blockEvents: 50 });
    const metrics = createStoreMetrics(new Registry());
    const maxBytes = 200 * 1024;
    const retention = new Retention({ store, maxAgeMs: 3_600_000_000, maxBytes, logger: silent, metrics, intervalMs: 3_600_000 });
    retention.start();
    t.after(() => retention.stop());
    const events = incompressible(3_000, Date.now() * 1000);
    let largest = 0;
    for (let i = 0; i < events.length; i += 100) {
      await store.commit({ entries: events.slice(i, i + 100), revs: new Map() });
      await new Promise(setImmediate);
      await retention.runOnce();
      largest = Math.max(largest, store.span().bytes);
    }
    // One commit's worth (100 events ≈ 50 KB) may land before the check that follows it.
    assert.ok(largest <= maxBytes + 100 * 1024, `largest ${largest} bytes, bound ${maxBytes}`);
    assert.ok(store.span().bytes <= maxBytes);
    assert.equal(store.span().newestTimeUs, events.at(-1)!.timeUs);
  });

  test('a buffer at its size bound, trimmed after nearly every commit, is said to be trimmed at most once a minute, with what every pass since removed', async (t) => {
    const store = open(t, { blockEvents: 50 });
    const metrics = createStoreMetrics(new Registry());
    const lines: Array<{ msg: string; byAge: number; bySize: number }> = [];
    const logger = capturingLogger(lines, 'info');
    let nowMs = Date.now();
    const retention = new Retention({ store, maxAgeMs: 3_600_000_000, maxBytes: 100 * 1024, logger, metrics, intervalMs: 3_600_000, now: () => nowMs });
    const events = incompressible(4_000, Date.now() * 1000);
    const trimmedTotal = async () => (await metrics.eventsTrimmed.get()).values.reduce((sum, v) => sum + v.value, 0);
    const said = () => lines.filter((l) => l.msg === 'retention trimmed the buffer');
    // The steady state of a buffer at its size bound: a pass after each commit removes a block or so.
    let passes = 0;
    for (let i = 0; i < 2_000; i += 100) {
      await store.commit({ entries: events.slice(i, i + 100), revs: new Map() });
      const before = await trimmedTotal();
      await retention.runOnce();
      if ((await trimmedTotal()) > before) passes++;
      nowMs += 1_000;
    }
    assert.ok(passes >= 10, `most passes trimmed something (${passes})`);
    assert.equal(said().length, 1, `one line in 20 s, not one per pass: ${said().length} for ${passes} passes`);
    nowMs += 60_000;
    for (let i = 2_000; i < 2_400; i += 100) {
      await store.commit({ entries: events.slice(i, i + 100), revs: new Map() });
      await retention.runOnce();
    }
    assert.equal(said().length, 2, 'a minute on, the next');
    const told = said().reduce((sum, l) => sum + l.byAge + l.bySize, 0);
    assert.ok(told > 0 && told <= (await trimmedTotal()), 'each line counts what the passes since the one before removed');
    assert.ok(said()[1]!.bySize > said()[0]!.bySize, 'the second line sums many passes');
  });

  test('at start, and again at the measured rate, says how many hours the size bound holds (a warning when under --retention)', async (t) => {
    const store = open(t);
    const lines: Array<{ level: number; msg: string; hoursHeld: number; eventsPerSecond: number }> = [];
    // Its capacity lines only (a disk with less room than 40 GB adds a warning of its own: startup-disk-room.test.ts).
    const write = (line: string) => void lines.push(...[JSON.parse(line)].filter((l) => /holds about/.test(l.msg)));
    const logger = pino({ level: 'info' }, { write });
    const metrics = createStoreMetrics(new Registry());
    // 40 GB at 2,000 events/s and an estimated 200 B/event: 27.8 h, more than 24 h.
    const roomy = new Retention({ store, maxAgeMs: 24 * 3_600_000, maxBytes: 40e9, logger, metrics, capacityReportMs: 50 });
    roomy.start();
    await store.commit({ entries: makeEntries(500, Date.now() * 1000), revs: new Map() });
    await waitUntil(() => lines.some((l) => /at the measured rate/.test(l.msg)), 'a capacity report at the measured rate');
    await roomy.stop();
    assert.equal(lines[0]!.level, 30);
    assert.match(lines[0]!.msg, /holds about 27\.8 h of events at the live network's ~2,000 events\/s/);
    const measured = lines.find((l) => /at the measured rate/.test(l.msg));
    assert.ok(measured && measured.eventsPerSecond > 0, 'then at the rate it measured');
    // 10 GB: 6.9 h at 2,000 events/s, under 24 h: a warning that the size bound trims first.
    lines.length = 0;
    const tight = new Retention({ store, maxAgeMs: 24 * 3_600_000, maxBytes: 10e9, logger, metrics });
    tight.start();
    await tight.stop();
    assert.equal(lines[0]!.level, 40);
    assert.match(lines[0]!.msg, /holds about 6\.9 h .*less than --retention \(24 h\), so the size bound trims first/);
  });

  test('ingest commits interleave with a running retention pass', async (t) => {
    const store = open(t, { blockEvents: 50 });
    const events = makeEntries(2_000, T0_US);
    await commitInBatches(store, events.slice(0, 1_500), 500);
    const metrics = createStoreMetrics(new Registry());
    const cutoff = events[1_000]!.timeUs - 1_000;
    const retention = new Retention({ store, maxAgeMs: 1, maxBytes: 1e12, logger: silent, metrics, chunkSize: 50, now: () => events[1_000]!.timeUs / 1000 });
    const pass = retention.runOnce();
    await commitInBatches(store, events.slice(1_500), 100);
    await pass;
    // Only whole blocks older than the cutoff go; every newer event, including those committed meanwhile, stays.
    const left = readAll(store, 0, { maxEntries: 300 }).entries;
    assert.deepEqual(view(left), view(events.slice(events.length - left.length)));
    const olderLeft = left.filter((e) => e.timeUs < cutoff).length;
    assert.ok(olderLeft < 50, `${olderLeft} events older than the cutoff are left: less than a block`);
    assert.ok(left.length >= events.filter((e) => e.timeUs >= cutoff).length);
  });
});

describe('runs without fsync and machine crashes', () => {
  const MARKER = 'contrail-run.json';
  const bootId = () => {
    try {
      return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      return null;
    }
  };

  /** A buffer left as a killed run leaves it: committed events, and the run's marker still there. */
  async function killedRun(t: TestContext, fsync: boolean): Promise<{ dir: string; events: Entry[] }> {
    const dir = tempDir('contrail-store-');
    t.after(() => dir.remove());
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20, fsync });
    const events = makeEntries(20);
    await store.commit({ entries: events, cursor: { url: 'wss://relay.test', seq: 20 }, revs: new Map() });
    assert.ok(existsSync(join(dir.path, MARKER)), 'a running store leaves a marker');
    const marker = readFileSync(join(dir.path, MARKER), 'utf8');
    await store.close();
    assert.ok(!existsSync(join(dir.path, MARKER)), 'a clean close removes it');
    writeFileSync(join(dir.path, MARKER), marker); // as if the process had been killed instead
    return { dir: dir.path, events };
  }

  test('after a killed process (same boot) the buffer is kept and the unclean stop reported', async (t) => {
    const { dir, events } = await killedRun(t, false);
    const store = open(t, { dataDir: dir });
    assert.deepEqual(store.previousRun, { unclean: true });
    assert.deepEqual(view(store.readAfter(0, { maxEntries: 100 }).entries), view(events));
    assert.deepEqual(store.upstreamCursor, { url: 'wss://relay.test', seq: 20 });
  });

  test('after a machine crash of a run without fsync the possibly torn buffer is set aside, kept, and a new one starts', { skip: bootId() === null && 'no boot id on this OS' }, async (t) => {
    const { dir } = await killedRun(t, false);
    const marker = JSON.parse(readFileSync(join(dir, MARKER), 'utf8'));
    writeFileSync(join(dir, MARKER), JSON.stringify({ ...marker, bootId: 'an-earlier-boot' }));
    const store = open(t, { dataDir: dir });
    assert.equal(store.previousRun.unclean, true);
    assert.match(store.previousRun.setAside ?? '', /data\.mdb\.unsynced-/);
    assert.ok(statSync(store.previousRun.setAside!).size > 0, 'the old buffer is kept for the operator');
    assert.equal(store.span().eventCount, 0, 'the new buffer starts empty');
    assert.equal(store.upstreamCursor, undefined);
  });

  test('after a machine crash of a run without fsync the new buffer numbers its events above every seq the lost one gave out: a seq cursor from before is too old, never taken for another event', { skip: bootId() === null && 'no boot id on this OS' }, async (t) => {
    const { dir, events } = await killedRun(t, false);
    const marker = JSON.parse(readFileSync(join(dir, MARKER), 'utf8'));
    writeFileSync(join(dir, MARKER), JSON.stringify({ ...marker, bootId: 'an-earlier-boot' }));
    const store = open(t, { dataDir: dir });
    assert.match(store.previousRun.setAside ?? '', /data\.mdb\.unsynced-/);
    const given = events.at(-1)!.seq!;
    const next = makeEntries(5, Date.now() * 1000, 100);
    await store.commit({ entries: next, revs: new Map() });
    assert.ok(next[0]!.seq! > given, `its first event has seq ${next[0]!.seq}, after the ${given} the lost buffer gave out`);
    assert.ok(store.oldest()!.seq > given, 'so a client resuming at a seq it was given before is older than the buffer');
    await store.close();
    const reopened = open(t, { dataDir: dir, readOnly: true });
    assert.equal(reopened.lastSeq, next.at(-1)!.seq, "and it is the new buffer's to keep");
  });

  test('after a machine crash of a run with fsync the buffer is kept: LMDB reopens at its last flushed commit', async (t) => {
    const { dir, events } = await killedRun(t, true);
    const marker = JSON.parse(readFileSync(join(dir, MARKER), 'utf8'));
    writeFileSync(join(dir, MARKER), JSON.stringify({ ...marker, bootId: 'an-earlier-boot' }));
    const store = open(t, { dataDir: dir });
    assert.deepEqual(store.previousRun, { unclean: true });
    assert.equal(store.span().eventCount, events.length);
  });

  test('a read-only open (contrail inspect) neither reads nor writes the marker', async (t) => {
    const { dir } = await killedRun(t, false);
    const before = readFileSync(join(dir, MARKER), 'utf8');
    const reader = open(t, { dataDir: dir, readOnly: true });
    assert.equal(reader.span().eventCount, 20);
    await reader.close();
    assert.equal(readFileSync(join(dir, MARKER), 'utf8'), before);
  });
});
