/**
 * Property: a replay read on a worker thread (ReplayPool: a real thread opening the same LMDB
 * environment) returns exactly what the main thread's EventStore.readAfter returns — the same
 * events in the same order, the same wanted events skipped for maxMessageSizeBytes, and for
 * zstd wires the very frames the main thread would make — for random buffers (block sizes, no
 * or a tiny hot log), random filters (DIDs, collections, prefixes, kinds, size limits), random
 * wires and random cursors, with commits landing between a replay's reads (each read must see
 * every event committed before it was asked for). And a read whose position retention has
 * passed answers `trimmed` instead of skipping events.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pino } from 'pino';
import { DEFAULT_DICTIONARY } from '../src/config.ts';
import type { Entry, EventKind } from '../src/events/index.ts';
import { EventCompressor } from '../src/server/compression.ts';
import { parseFilter, sendsEvent, type SubscriberFilter } from '../src/server/filter.ts';
import { decodeAnswer, filterSpecJson, ReplayPool } from '../src/server/replay-pool.ts';
import { ndjsonWire, sseWire, v1Wire, v2Wire, type Wire } from '../src/server/wire.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { mulberry32 } from './support/synthetic.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const BUFFERS = 6;
const QUERIES_PER_BUFFER = 12;
const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow', 'app.bsky.graph.block', 'com.example.thing', 'fyi.unravel.frontpage.vote'];
const PREFIXES = ['app.*', 'app.bsky.*', 'app.bsky.graph.*', 'fyi.*'];
const KINDS: EventKind[] = ['commit', 'identity', 'account', 'sync'];
const LIMITS = { maxEntries: 40, maxScanned: 300, maxBytes: 6_000 };

const view = (entries: readonly Entry[]) => entries.map((e) => `${e.timeUs} ${e.seq} ${e.kind} ${e.did} ${e.collection} ${e.json.toString()}`);

test(`worker replay reads equal main-thread reads: ${BUFFERS} random buffers × ${QUERIES_PER_BUFFER} random filters, wires and cursors (seed ${SEED})`, async (t) => {
  const rnd = mulberry32(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const compressor = new EventCompressor(readFileSync(DEFAULT_DICTIONARY));
  const wires: Wire[] = [v1Wire(compressor, false), v1Wire(compressor, true), v2Wire(compressor, false), v2Wire(compressor, true), sseWire(), ndjsonWire()];
  const dids = Array.from({ length: 200 }, (_, i) => `did:plc:${i.toString(36).padStart(24, 'w')}`);
  const didOf = () => dids[Math.floor(dids.length * rnd() ** 3)]!;
  let workerReads = 0;
  let trimmedAnswers = 0;
  for (let b = 0; b < BUFFERS; b++) {
    const dir = tempDir('contrail-replay-fuzz-');
    t.after(() => dir.remove());
    const blockEvents = pick([3, 16, 64, 200]);
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: pick([0, 3_000]), blockEvents, fsync: false });
    const pool = new ReplayPool(1, { location: store.location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level, replayLevel: compressor.replayLevel, lowerPriority: false }, pino({ level: 'silent' }));
    const committed: Entry[] = [];
    let timeUs = 1_700_000_000_000_000 + Math.floor(rnd() * 1e6);
    const commitBatch = async () => {
      const batch: Entry[] = [];
      for (let i = 1 + Math.floor(rnd() * 60); i > 0; i--) {
        timeUs += 1 + Math.floor(rnd() * 3);
        const roll = rnd();
        const kind: EventKind = roll < 0.04 ? 'identity' : roll < 0.07 ? 'account' : roll < 0.09 ? 'sync' : 'commit';
        const did = didOf();
        // v2 frames are cut from the v1 JSON's kind object, so events carry one.
        const json = `{"did":"${did}","time_us":${timeUs},"kind":"${kind}","${kind}":{"n":${committed.length + batch.length},"pad":"${'y'.repeat(Math.floor(rnd() * 300))}"}}`;
        batch.push({ timeUs, did, kind, collection: kind === 'commit' ? pick(COLLECTIONS) : null, json: Buffer.from(json) });
      }
      await store.commit({ entries: batch, revs: new Map() });
      committed.push(...batch);
    };
    while (committed.length < 200 + rnd() * 2_000) await commitBatch();

    for (let q = 0; q < QUERIES_PER_BUFFER; q++) {
      const wire = pick(wires);
      const parsed = parseFilter({
        wantedDids: rnd() < 0.5 ? Array.from({ length: 1 + Math.floor(rnd() * 4) }, didOf) : [],
        wantedCollections: rnd() < 0.5 ? [...Array.from({ length: Math.floor(rnd() * 3) }, () => pick(COLLECTIONS)), ...(rnd() < 0.4 ? [pick(PREFIXES)] : [])] : [],
        wantedKinds: rnd() < 0.3 ? [...new Set(['commit', pick(KINDS)])] : [],
        maxMessageSizeBytes: rnd() < 0.3 ? 150 + Math.floor(rnd() * 250) : undefined,
      });
      const filter: SubscriberFilter = { ...parsed, frameBytes: wire.frameBytes };
      const first = committed[0]!.timeUs;
      const cursor = first - 5 + Math.floor(rnd() * (committed.at(-1)!.timeUs - first + 10));
      const what = `buffer ${b} (blocks of ${blockEvents}), query ${q}: ${wire.name}${wire.zstd ? '+zstd' : ''} ${filterSpecJson(filter)} from ${cursor}`;

      // As the hub reads: from a worker while the hot log does not cover the position, with
      // commits landing in between; then from the hot log on this thread.
      const viaWorker: Entry[] = [];
      let tooLargeViaWorker = 0;
      let position = cursor - 1;
      while (!store.hotLog.covers(position)) {
        if (rnd() < 0.3) await commitBatch();
        const { sealedEvents, didIndexUsable } = store.indexState;
        const answer = await pool.read({ position, end: store.hotLog.floor, filter: filterSpecJson(filter), wire: { name: wire.name, zstd: wire.zstd }, limits: LIMITS, sealedEvents, didIndexUsable });
        assert.ok(!answer.trimmed, `${what}: nothing was trimmed`);
        workerReads++;
        const read = decodeAnswer(answer);
        assert.ok(read.position > position, `${what}: the position moves forward`);
        if (wire.zstd) {
          assert.equal(read.frames?.length, read.entries.length, `${what}: a frame per event`);
          read.entries.forEach((entry, i) => assert.deepEqual(Buffer.from(read.frames![i]!), Buffer.from((wire.replayFrame ?? wire.frame)(entry)), `${what}: the worker's frame is the one the main thread makes for a replay`));
        } else {
          assert.equal(read.frames, undefined, `${what}: no frames for a wire without zstd`);
        }
        viaWorker.push(...read.entries);
        tooLargeViaWorker += answer.tooLarge;
        position = read.position;
      }
      const sends = (count: () => void) => (entry: Entry) => sendsEvent(filter, entry, count);
      for (;;) {
        const read = store.readAfter(position, { ...LIMITS, filter: sends(() => tooLargeViaWorker++), select: filter });
        if (read.position === position && read.entries.length === 0) break;
        viaWorker.push(...read.entries);
        position = read.position;
      }

      const onMainThread: Entry[] = [];
      let tooLargeOnMainThread = 0;
      position = cursor - 1;
      for (;;) {
        const read = store.readAfter(position, { ...LIMITS, filter: sends(() => tooLargeOnMainThread++), select: filter });
        if (read.position === position && read.entries.length === 0) break;
        onMainThread.push(...read.entries);
        position = read.position;
      }
      assert.deepEqual(view(viaWorker), view(onMainThread), `worker replay == main-thread replay: ${what}`);
      assert.equal(tooLargeViaWorker, tooLargeOnMainThread, `${what}: the same events skipped for their size`);
      const model = committed.filter((e) => e.timeUs >= cursor && sendsEvent(filter, e, () => {}));
      assert.deepEqual(view(onMainThread), view(model), `main-thread replay == the model: ${what}`);
    }

    // Retention passes a reader's position: the worker says so rather than skip events.
    const removed = await store.trimBefore(committed[Math.floor(committed.length / 2)]!.timeUs, Infinity);
    if (removed > 0 && !store.hotLog.covers(store.trimmedUpTo - 1)) {
      const { sealedEvents, didIndexUsable } = store.indexState;
      const answer = await pool.read({ position: store.trimmedUpTo - 1, end: store.hotLog.floor, filter: filterSpecJson(parseFilter({})), wire: { name: 'v1', zstd: false }, limits: LIMITS, sealedEvents, didIndexUsable });
      assert.equal(answer.trimmed, true, `buffer ${b}: a read below trimmedUpTo answers trimmed`);
      trimmedAnswers++;
    }
    await pool.close();
    await store.close();
  }
  assert.ok(workerReads > 100, `the worker served the disk part of the replays (${workerReads} reads)`);
  assert.ok(trimmedAnswers > 0, 'some buffers were trimmed past a reader');
});
