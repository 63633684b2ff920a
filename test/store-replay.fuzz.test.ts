/**
 * Property: for random buffers (sizes, block sizes, hot log sizes, retention, index postings a
 * read takes per DID), random filters (DIDs, collections, prefixes, combinations) and random
 * cursors and batch limits, a replay that
 * hands the store its selection (so it reads the per-DID index or only the wanted partitions)
 * returns exactly what a plain scan with the same filter returns, in order — and both equal the
 * model: the committed events at or after the cursor that the filter wants.
 *
 * Twice: with wanted DIDs drawn like events' DIDs (busy repos mostly, whose entries are often too
 * many for the index: over 1/64 of the events), and aimed at the per-DID index: half the wanted
 * DIDs quiet (drawn uniformly, so the index is selective for them), then every DID replayed alone
 * from the start; some commits followed by a turn of the event loop, so blocks are also sealed
 * alone, in steps, while eight-block seals write their postings in several chunks
 * (INDEX_WRITE_CHUNK). Added after an audit: a seal that lost the first posting of every chunk
 * after the first passed the first run on 4 of 6 seeds tried; the second fails it on all 6.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { Entry, EventKind } from '../src/events/index.ts';
import { didHash, posting } from '../src/store/did-keys.ts';
import { openEnvironment, openMeta, openTables } from '../src/store/environment.ts';
import { META } from '../src/store/stored-state.ts';
import { EventStore, type Selection } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { mulberry32 } from './support/synthetic.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const QUERIES_PER_BUFFER = 25;
const COLLECTIONS = [
  'app.bsky.feed.like',
  'app.bsky.feed.post',
  'app.bsky.feed.repost',
  'app.bsky.graph.follow',
  'app.bsky.graph.block',
  'app.bsky.actor.profile',
  'com.example.thing',
  'fyi.unravel.frontpage.vote',
];
const PREFIXES = ['app.', 'app.bsky.', 'app.bsky.graph.', 'com.example.', 'fyi.'];

interface Filter extends Selection {
  matches(entry: Entry): boolean;
}

function makeFilter(dids: string[], collections: string[], prefixes: string[]): Filter {
  const didSet = new Set(dids);
  const collectionSet = new Set(collections);
  return {
    dids: didSet,
    collections: collectionSet,
    prefixes,
    matches(entry) {
      if (didSet.size > 0 && !didSet.has(entry.did)) return false;
      if (entry.collection === null || (collectionSet.size === 0 && prefixes.length === 0)) return true;
      return collectionSet.has(entry.collection) || prefixes.some((p) => entry.collection!.startsWith(p));
    },
  };
}

function readAll(store: EventStore, position: number, options: { maxEntries: number; maxScanned?: number; filter: Filter; select?: Selection }): Entry[] {
  const out: Entry[] = [];
  for (let reads = 0; reads < 1_000_000; reads++) {
    const result = store.readAfter(position, { ...options, filter: (e) => options.filter.matches(e) });
    if (result.entries.length === 0 && result.position === position) return out;
    assert.ok(result.position > position, 'the position only moves forward');
    position = result.position;
    out.push(...result.entries);
  }
  throw new Error('reader never caught up');
}

const view = (entries: readonly Entry[]) => entries.map((e) => `${e.timeUs} ${e.seq} ${e.did} ${e.collection} ${e.json.toString()}`);

interface Buffers {
  count: number;
  /** Events in a buffer: 50 up to this many more. */
  maxEvents: number;
  /** The share of wanted DIDs drawn uniformly (quiet ones), not like events' DIDs. */
  quietDids: number;
  /** The share of commits followed by a turn of the event loop (blocks then seal alone, in steps). */
  turns: number;
  /** Reads through the per-DID index the run must have made at least. */
  indexReads: number;
  /** Also replay each DID alone from the start (most through the index), against the model. */
  everyDid: boolean;
}

async function indexReplayEqualsScan(t: TestContext, seed: number, buffers: Buffers): Promise<void> {
  const rnd = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => {
    const item = items[Math.floor(rnd() * items.length)];
    assert.ok(item !== undefined, 'picked from an empty list');
    return item;
  };
  const plansSeen = { didIndex: 0, partitions: 0 };
  for (let b = 0; b < buffers.count; b++) {
    const dir = tempDir('contrail-fuzz-');
    t.after(() => dir.remove());
    const blockEvents = pick([3, 16, 64, 200]);
    // Few postings per DID per read, as a busy repo in a day-sized buffer has many more than a read takes.
    const didPostingsPerRead = pick([2, 7, 512]);
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: pick([0, 3_000, 1 << 22]), blockEvents, fsync: false, didPostingsPerRead });
    // A few busy repos and a long tail of quiet ones, as on the network.
    const dids = Array.from({ length: 400 }, (_, i) => `did:plc:${i.toString(36).padStart(24, 'q')}`);
    const didOf = () => dids[Math.floor(dids.length * rnd() ** 3)]!;
    const count = 50 + Math.floor(rnd() * buffers.maxEvents);
    const wantedDid = buffers.quietDids > 0 ? () => (rnd() < buffers.quietDids ? dids[Math.floor(rnd() * dids.length)]! : didOf()) : didOf;
    const committed: Entry[] = [];
    let timeUs = 1_700_000_000_000_000 + Math.floor(rnd() * 1e6);
    while (committed.length < count) {
      const batch: Entry[] = [];
      for (let i = 1 + Math.floor(rnd() * 60); i > 0; i--) {
        timeUs += 1 + Math.floor(rnd() * 3);
        const roll = rnd();
        const kind: EventKind = roll < 0.04 ? 'identity' : roll < 0.07 ? 'account' : roll < 0.09 ? 'sync' : 'commit';
        const collection = kind === 'commit' ? pick(COLLECTIONS) : null;
        const did = didOf();
        const json = `{"did":"${did}","time_us":${timeUs},"kind":"${kind}","n":${committed.length + batch.length},"pad":"${'z'.repeat(Math.floor(rnd() * 80))}"}`;
        batch.push({ timeUs, did, kind, collection, json: Buffer.from(json) });
      }
      await store.commit({ entries: batch, revs: new Map() });
      committed.push(...batch);
      if (buffers.turns > 0 && rnd() < buffers.turns) await new Promise((resolve) => setImmediate(resolve));
    }
    let kept = committed;
    if (rnd() < 0.3) {
      const removed = await store.trimBefore(pick(committed).timeUs, Infinity);
      kept = committed.slice(removed);
    }

    for (let q = 0; q < QUERIES_PER_BUFFER; q++) {
      const wantedDids = rnd() < 0.6 ? Array.from({ length: 1 + Math.floor(rnd() * 4) }, wantedDid) : [];
      if (rnd() < 0.1) wantedDids.push('did:plc:nobodywiththisdidatall00');
      const collections = rnd() < 0.5 ? Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => pick(COLLECTIONS)) : [];
      const prefixes = rnd() < 0.3 ? [pick(PREFIXES)] : [];
      const filter = makeFilter(wantedDids, collections, prefixes);
      const first = committed[0]!.timeUs;
      const last = committed[committed.length - 1]!.timeUs;
      const cursor = rnd() < 0.1 ? 0 : first - 5 + Math.floor(rnd() * (last - first + 10));
      const maxEntries = 1 + Math.floor(rnd() * 40);
      const maxScanned = rnd() < 0.5 ? undefined : 1 + Math.floor(rnd() * 300);
      const what = `buffer ${b} (blocks of ${blockEvents}, ${didPostingsPerRead} postings a read), query ${q}: dids ${wantedDids.length}, collections ${collections}, prefixes ${prefixes}, cursor ${cursor}`;

      const expected = kept.filter((e) => e.timeUs >= cursor && filter.matches(e));
      const scan = readAll(store, cursor - 1, { maxEntries, maxScanned, filter });
      const indexed = readAll(store, cursor - 1, { maxEntries, maxScanned, filter, select: filter });
      assert.deepEqual(view(indexed), view(scan), `index replay == scan replay: ${what}`);
      assert.deepEqual(view(scan), view(expected), `scan replay == the model: ${what}`);
    }
    if (buffers.everyDid) {
      for (const did of dids) {
        const filter = makeFilter([did], [], []);
        const what = `buffer ${b} (blocks of ${blockEvents}, ${didPostingsPerRead} postings a read), ${did} alone from the start`;
        assert.deepEqual(view(readAll(store, 0, { maxEntries: 64, filter, select: filter })), view(kept.filter((e) => e.did === did)), what);
      }
    }
    plansSeen.didIndex += store.readPlans.didIndex;
    plansSeen.partitions += store.readPlans.partitions;
    await store.close();
  }
  assert.ok(plansSeen.didIndex >= buffers.indexReads, `replays went through the per-DID index (${plansSeen.didIndex} reads)`);
  assert.ok(plansSeen.partitions > 0, 'some replays read only the wanted partitions');
}

test(`index replay equals scan replay: 24 random buffers × ${QUERIES_PER_BUFFER} random filters and cursors (seed ${SEED})`, (t) =>
  indexReplayEqualsScan(t, SEED, { count: 24, maxEvents: 2_500, quietDids: 0, turns: 0, indexReads: 1, everyDid: false }));

test(`index replay equals scan replay, quiet DIDs and multi-chunk seals: 12 random buffers × ${QUERIES_PER_BUFFER} random filters and cursors (seed ${SEED + 2})`, (t) =>
  indexReplayEqualsScan(t, SEED + 2, { count: 12, maxEvents: 5_000, quietDids: 0.5, turns: 0.05, indexReads: 60, everyDid: true }));

/**
 * Property: named replays reading concurrently (so whole blocks' merges are kept for the ones
 * behind, and their slabs reused once released), with reads held for a while before release,
 * replays going quiet past the reader TTL or saying they are done, retention removing blocks and
 * new commits sealing under them, each get exactly the stored events after their position, in
 * order — and every held read's bytes stay intact until it is released.
 */
test(`concurrent named replays with held reads, quiet readers, trims and seals get the stored events, intact until released (seed ${SEED})`, async (t) => {
  const rnd = mulberry32(SEED + 1);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  let reads = 0;
  for (let b = 0; b < 8; b++) {
    const dir = tempDir('contrail-fuzz-readers-');
    t.after(() => dir.remove());
    let nowMs = 0;
    const blockEvents = pick([16, 64]);
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: pick([0, 3_000]), blockEvents, blockCacheBytes: pick([0, 64 * 1024, 1 << 20]), fsync: false, nowMs: () => nowMs });
    let kept: Entry[] = [];
    let timeUs = 1_700_000_000_000_000;
    const commitSome = async (count: number) => {
      const batch: Entry[] = [];
      for (let i = 0; i < count; i++) {
        timeUs += 1 + Math.floor(rnd() * 3);
        const did = `did:plc:${Math.floor(rnd() * 50).toString(36).padStart(24, 'q')}`;
        // Up to ~3 KB: a 1 MiB slab holds a few blocks, so reads span and reuse several.
        const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","pad":"${String.fromCharCode(97 + (timeUs % 26)).repeat(Math.floor(rnd() * 3_000))}"}`;
        batch.push({ timeUs, did, kind: 'commit', collection: pick(COLLECTIONS), json: Buffer.from(json) });
      }
      await store.commit({ entries: batch, revs: new Map() });
      kept = kept.concat(batch);
    };
    await commitSome(blockEvents * (20 + Math.floor(rnd() * 30)));
    await new Promise((resolve) => setTimeout(resolve, 20)); // sealing runs in steps after commits

    let nextReader = 1;
    const replays = Array.from({ length: 2 + Math.floor(rnd() * 5) }, () => ({ id: nextReader++, position: rnd() < 0.5 ? 0 : pick(kept).timeUs, maxEntries: 1 + Math.floor(rnd() * 300) }));
    const held: { read: ReturnType<EventStore['readAfter']>; expected: string[] }[] = [];
    const releaseOne = (at: number) => {
      const [{ read, expected }] = held.splice(at, 1) as [(typeof held)[number]];
      assert.deepEqual(read.entries.map((e) => e.json.toString()), expected, `buffer ${b}: a held read's bytes changed before its release`);
      store.release(read);
    };
    for (let op = 0; op < 800; op++) {
      const roll = rnd();
      if (roll < 0.6) {
        const replay = pick(replays);
        const read = store.readAfter(replay.position, { maxEntries: replay.maxEntries, reader: replay.id });
        reads++;
        const from = kept.findIndex((e) => e.timeUs > replay.position);
        const expected = from < 0 ? [] : kept.slice(from, from + read.entries.length);
        assert.deepEqual(read.entries.map((e) => `${e.timeUs} ${e.json}`), expected.map((e) => `${e.timeUs} ${e.json}`), `buffer ${b}, op ${op}: replay ${replay.id} after ${replay.position}`);
        if (from >= 0) assert.ok(read.entries.length > 0, `buffer ${b}, op ${op}: events are stored after ${replay.position} but the read returned none`);
        if (read.entries.length > 0) replay.position = read.position;
        held.push({ read, expected: expected.map((e) => e.json.toString()) });
      } else if (roll < 0.8 && held.length > 0) {
        releaseOne(Math.floor(rnd() * held.length));
      } else if (roll < 0.88) {
        nowMs += pick([100, 1_500, 6_000, 11_000]);
      } else if (roll < 0.93) {
        const replay = pick(replays);
        store.readerDone(replay.id);
        replay.id = nextReader++;
      } else if (roll < 0.96 && kept.length > blockEvents) {
        const removed = await store.trimBefore(kept[Math.floor(rnd() * kept.length * 0.3)]!.timeUs, Infinity);
        kept = kept.slice(removed);
      } else {
        await commitSome(1 + Math.floor(rnd() * blockEvents * 3));
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    while (held.length > 0) releaseOne(held.length - 1);
    await store.close();
  }
  assert.ok(reads > 2_000, `${reads} reads`);
});

/**
 * Property: a per-DID index rebuilt in the background — from an index that lost postings and
 * gained wrong ones — while commits seal blocks (alone, in steps, and eight at once), retention
 * removes blocks and the buffer is closed and reopened in the middle of it, ends up exactly the
 * index built from scratch: one posting for each sealed event kept, none other. Meanwhile
 * DID-filtered replays (scans, while it is rebuilt) return what the model says; afterwards they go
 * through the index again, and still do.
 */
test(`a per-DID index rebuilt in the background, with commits, seals, trims and reopens during it, equals one built from scratch: 9 random buffers (seed ${SEED + 3})`, async (t) => {
  const rnd = mulberry32(SEED + 3);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  let opsDuring = 0;
  let reopensDuring = 0;
  let trimsDuring = 0;
  for (let b = 0; b < 9; b++) {
    const dir = tempDir('contrail-fuzz-rebuild-');
    t.after(() => dir.remove());
    // 200: a block's postings take a live seal several steps (INDEX_WRITE_CHUNK), which may fall in several turns.
    const blockEvents = pick([16, 200]);
    const options = { dataDir: dir.path, hotLogBytes: pick([0, 3_000]), blockEvents, fsync: false, didPostingsPerRead: pick([7, 512]) };
    let store = new EventStore(options);
    const dids = Array.from({ length: 200 }, (_, i) => `did:plc:${i.toString(36).padStart(24, 'r')}`);
    let kept: Entry[] = [];
    let timeUs = 1_700_000_000_000_000;
    const commitSome = async (count: number) => {
      const batch: Entry[] = [];
      for (let i = 0; i < count; i++) {
        timeUs += 1 + Math.floor(rnd() * 3);
        const kind: EventKind = rnd() < 0.05 ? 'identity' : 'commit';
        const collection = kind === 'commit' ? pick(COLLECTIONS) : null;
        const did = dids[Math.floor(dids.length * rnd() ** 2)]!;
        batch.push({ timeUs, did, kind, collection, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"${kind}"}`) });
      }
      await store.commit({ entries: batch, revs: new Map() });
      kept = kept.concat(batch);
    };
    const replayOf = (did: string) => {
      const filter = makeFilter([did], [], []);
      return view(readAll(store, 0, { maxEntries: 32, filter, select: filter }));
    };
    for (let i = 0; i < 40; i++) {
      await commitSome(1 + Math.floor(rnd() * 200));
      if (rnd() < 0.3) await turn();
    }
    await store.close();

    // The index damaged: a tenth of its postings lost, and postings added that name other repos' events or none.
    const raw = openEnvironment({ dataDir: dir.path, readOnly: false, fsync: false });
    const { byDid } = openTables(raw);
    for (const { key, value } of [...byDid.getRange()]) if (rnd() < 0.1) byDid.removeSync(key, value);
    for (let i = 0; i < 20; i++) byDid.putSync(didHash(pick(dids)), posting(pick(kept).timeUs + (rnd() < 0.5 ? 0 : 1), Math.floor(rnd() * 4)));
    await raw.close();

    // What is under way when the inconsistency is found, by buffer: a live seal whose postings are
    // written and whose block is not (its last step is a turn of its own); or, before the rebuild's
    // first step, ten blocks sealed at once within a commit; or neither, and reopens during the rebuild.
    const shape = (['seal in steps', 'seal at once', 'reopens'] as const)[b % 3]!;
    store = new EventStore(options);
    if (shape === 'seal in steps') {
      await commitSome(blockEvents);
      await turn();
      assert.ok(store.sealState.unsealedEvents >= blockEvents, 'the seal is not done');
    }
    store.reportDidIndexInconsistent('test: a damaged index');
    assert.equal(store.didIndex.state, 'rebuilding', 'a writable store rebuilds the index at once');
    if (shape === 'seal at once') await commitSome(blockEvents * 12);
    let reopens = 0;
    const reopen = async () => {
      reopens++;
      reopensDuring++;
      await store.close();
      store = new EventStore(options);
      assert.equal(store.didIndex.state, 'rebuilding', 'a start before the rebuild was done begins it again');
    };
    while (store.didIndex.state === 'rebuilding') {
      opsDuring++;
      const roll = rnd();
      // The first step of a 'reopens' buffer is one, however soon the rebuild ends on this machine
      // (CI's ended before the rolls asked for a third reopen in all: session 23).
      if (shape === 'reopens' && reopens === 0) {
        await reopen();
      } else if (roll < 0.35) {
        await commitSome(1 + Math.floor(rnd() * blockEvents * 2));
      } else if (roll < 0.45) {
        // Ten full blocks in the tail: sealed at once, eight blocks together, within the commit.
        await commitSome(blockEvents * 12);
      } else if (roll < 0.6 && kept.length > blockEvents * 4) {
        trimsDuring++;
        kept = kept.slice(await store.trimBefore(kept[Math.floor(rnd() * kept.length * 0.2)]!.timeUs, Infinity));
      } else if (roll < 0.7 && shape === 'reopens' && reopens < 3) {
        await reopen();
      } else {
        const did = dids[Math.floor(rnd() * 20)]!;
        assert.deepEqual(replayOf(did), view(kept.filter((e) => e.did === did)), `buffer ${b}, op ${opsDuring}: ${did} while the index is rebuilt`);
      }
      await turn();
    }
    assert.equal(store.didIndex.state, 'ok');
    const before = store.readPlans.didIndex;
    for (const did of dids) assert.deepEqual(replayOf(did), view(kept.filter((e) => e.did === did)), `buffer ${b}: ${did} after the rebuild`);
    assert.ok(store.readPlans.didIndex > before, 'replays go through the rebuilt index');
    await store.close();

    const done = openEnvironment({ dataDir: dir.path, readOnly: true, fsync: false });
    const tables = openTables(done);
    const partOf = new Map([...tables.partitions.getRange()].map(({ key, value }) => [key, value]));
    let sealedUpTo = 0;
    for (const key of tables.directory.getKeys({ reverse: true, limit: 1 })) sealedUpTo = key;
    const postings = (entries: Array<{ key: Buffer; value: Buffer }>) => entries.map(({ key, value }) => `${key.toString('hex')} ${value.toString('hex')}`).sort();
    const expected = kept
      .filter((e) => e.timeUs <= sealedUpTo)
      .map((e) => ({ key: didHash(e.did), value: posting(e.timeUs, e.collection === null ? 0 : partOf.get(e.collection)!) }));
    assert.ok(expected.length > 0);
    assert.deepEqual(postings([...tables.byDid.getRange()]), postings(expected), `buffer ${b}: the rebuilt index is the one built from scratch`);
    assert.equal(openMeta(done).get(META.didIndexBroken), undefined, 'and no longer marked inconsistent');
    await done.close();
  }
  t.diagnostic(`${opsDuring} ops, ${trimsDuring} trims, ${reopensDuring} reopens`);
  assert.ok(opsDuring > 100 && trimsDuring > 5 && reopensDuring >= 3, `commits, trims, reads and reopens ran during the rebuilds (${opsDuring} ops, ${trimsDuring} trims, ${reopensDuring} reopens)`);
});
