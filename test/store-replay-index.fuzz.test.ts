/**
 * The same property as store-replay.fuzz.test.ts's first test, aimed at the per-DID index path.
 * There, wanted DIDs are drawn like events' DIDs (busy repos mostly), whose entries are too many
 * for the index (over 1/64 of the events), so few queries read it; and buffers are small, so a
 * seal rarely writes its postings in more than one chunk (INDEX_WRITE_CHUNK). A seal that lost the
 * first posting of every chunk after the first passed that test on every seed tried (and failed
 * only store-bad-input's retention test and store-seal's crash test). Here half the wanted DIDs
 * are drawn uniformly (quiet repos: the index is selective for them), buffers go up to ~8,000
 * events, and some commits are followed by turns of the event loop, so blocks are also sealed in
 * steps one at a time, not only eight at once.
 *
 * Property: for random buffers (sizes, block sizes, hot log sizes, retention, index postings a
 * read takes per DID), random filters (DIDs, collections, prefixes, combinations) and random
 * cursors and batch limits, a replay that
 * hands the store its selection (so it reads the per-DID index or only the wanted partitions)
 * returns exactly what a plain scan with the same filter returns, in order — and both equal the
 * model: the committed events at or after the cursor that the filter wants.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry, EventKind } from '../src/events/index.ts';
import { EventStore, type Selection } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { mulberry32 } from './support/synthetic.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const BUFFERS = 32;
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

test(`index replay equals scan replay, quiet DIDs and multi-chunk seals: ${BUFFERS} random buffers × ${QUERIES_PER_BUFFER} random filters and cursors (seed ${SEED})`, async (t) => {
  const rnd = mulberry32(SEED);
  const pick = <T>(items: readonly T[]): T => {
    const item = items[Math.floor(rnd() * items.length)];
    assert.ok(item !== undefined, 'picked from an empty list');
    return item;
  };
  const plansSeen = { didIndex: 0, partitions: 0 };
  for (let b = 0; b < BUFFERS; b++) {
    const dir = tempDir('contrail-fuzz-');
    t.after(() => dir.remove());
    const blockEvents = pick([3, 16, 64, 200]);
    // Few postings per DID per read, as a busy repo in a day-sized buffer has many more than a read takes.
    const didPostingsPerRead = pick([2, 7, 512]);
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: pick([0, 3_000, 1 << 22]), blockEvents, fsync: false, didPostingsPerRead });
    // A few busy repos and a long tail of quiet ones, as on the network.
    const dids = Array.from({ length: 400 }, (_, i) => `did:plc:${i.toString(36).padStart(24, 'q')}`);
    const didOf = () => dids[Math.floor(dids.length * rnd() ** 3)]!;
    const count = 50 + Math.floor(rnd() * 8_000);
    const quietDid = () => (rnd() < 0.5 ? dids[Math.floor(rnd() * dids.length)]! : didOf());
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
      if (rnd() < 0.05) await new Promise((resolve) => setImmediate(resolve));
    }
    let kept = committed;
    if (rnd() < 0.3) {
      const removed = await store.trimBefore(pick(committed).timeUs, Infinity);
      kept = committed.slice(removed);
    }

    for (let q = 0; q < QUERIES_PER_BUFFER; q++) {
      const wantedDids = rnd() < 0.6 ? Array.from({ length: 1 + Math.floor(rnd() * 4) }, quietDid) : [];
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
    plansSeen.didIndex += store.readPlans.didIndex;
    plansSeen.partitions += store.readPlans.partitions;
    await store.close();
  }
  assert.ok(plansSeen.didIndex > 200, `replays went through the per-DID index (${plansSeen.didIndex} reads)`);
  assert.ok(plansSeen.partitions > 0, 'some replays read only the wanted partitions');
});
