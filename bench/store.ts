/**
 * bench/store: the replay buffer's write and replay throughput, one core, beside raw lmdb-js
 * on the same data in the same run, so the cost of our layer is visible.
 *
 *   write   EventStore.commit in batches (events + the batch's DID revs + the upstream cursor +
 *           last time_us in one transaction, hot log append), awaited one after another — vs raw:
 *           the same encoded values put in one `transaction()` per batch; and "raw, same writes":
 *           raw also puts the revs and the cursor, i.e. everything but our code.
 *   replay  EventStore.readAfter from a cursor before the oldest event, READ_BATCH at a time, from
 *           disk (hot log disabled) and from the hot log; "all events" and a metadata filter that
 *           matches ~1% (one collection) — vs raw: getRange over the same keys, decoding each
 *           value (all) or reading the collection out of the stored header (filter).
 *
 * Rates are events per wall-clock second (median of RUNS after a warm-up) and events per CPU-second
 * of the process, all threads: on a shared machine the second is the steadier one-core figure.
 * Writes wait for LMDB's commit (fsync with overlappingSync), so they follow the disk's sync latency.
 *
 * Events are real ones: SyntheticFirehose frames (bench/frames.ts) through decodeFrame → parseMessage →
 * buildEvents with a CursorClock; the same messages are built again (new time_us) to reach the
 * event count without generating more frames. `npx tsx bench/store.ts` prints the table.
 */
import { fileURLToPath } from 'node:url';
import { open } from 'lmdb';
import { CursorClock } from '../src/events/clock.ts';
import { buildEvents, type Entry } from '../src/events/entry.ts';
import { decodeRecords, encodeRecords } from '../src/store/codec.ts';
import { EventStore } from '../src/store/event-store.ts';
import { eventMessageOf, type EventMessage } from '../test/support/events.ts';
import { tempDir } from '../test/support/gateway.ts';
import { preparedFrames } from './frames.ts';
import { median, printTable, timeEvents, type Row } from './table.ts';

const FRAMES = 10_000;
const EVENTS = 60_000;
const BATCH = 500;
/** What group commit reaches while catching up a backlog. */
const BIG_BATCH = 5_000;
const READ_BATCH = 512;
const RUNS = 5;
/** ~1% of the synthetic mix (a non-Bluesky collection). */
const RARE_COLLECTION = 'fyi.unravel.frontpage.vote';

function realisticEvents(): { entries: Entry[]; revsPerBatch: Array<Map<string, string>> } {
  const messages: EventMessage[] = [];
  for (const frame of preparedFrames(FRAMES, { seed: 1, accounts: 5_000 })) {
    const message = eventMessageOf(frame.bytes);
    if (message) messages.push(message);
  }
  const clock = new CursorClock();
  const entries: Entry[] = [];
  const revsPerBatch: Array<Map<string, string>> = [];
  let revs = new Map<string, string>();
  for (let i = 0; entries.length < EVENTS; i++) {
    const message = messages[i % messages.length];
    if (message === undefined) throw new Error('no frames to build events from');
    for (const entry of buildEvents(message, clock).entries) {
      if (entries.length === EVENTS) break;
      entry.seq = entries.length + 1;
      entries.push(entry);
      if (entries.length % BATCH === 0) {
        revsPerBatch.push(revs);
        revs = new Map();
      }
    }
    if (message.type === 'commit') revs.set(message.repo, message.rev);
  }
  if (revs.size) revsPerBatch.push(revs);
  return { entries, revsPerBatch };
}

interface Sample {
  /** Events per wall-clock second. */
  rate: number;
  /** Events per CPU-second of this process, all threads (LMDB's writer thread included). */
  cpuRate: number;
}

async function timed(work: () => Promise<number> | number): Promise<Sample> {
  const run = await timeEvents(work);
  return { rate: run.events / run.seconds, cpuRate: run.events / run.cpuSeconds };
}

/** raw lmdb: the events only; same writes: also the batch's revs and the cursor, as contrail does. */
type Side = 'contrail' | 'raw lmdb' | 'raw lmdb, same writes';

export async function run(): Promise<Row[]> {
  const { entries, revsPerBatch } = realisticEvents();
  const jsonBytes = entries.reduce((sum, e) => sum + e.json.byteLength, 0);
  const encoded = entries.map((entry) => encodeRecords([entry]));
  const rare = entries.filter((e) => e.collection === RARE_COLLECTION).length;
  const samples = new Map<string, Sample[]>();
  const record = (name: string, side: Side, sample: Sample) => {
    const key = `${name}\u0000${side}`;
    samples.set(key, [...(samples.get(key) ?? []), sample]);
  };
  const dirs: Array<{ remove(): void }> = [];
  /** The revs of the commits among entries [i, i + batch). */
  const revsFor = (i: number, batch: number) => {
    const revs = new Map<string, string>();
    for (let b = i / BATCH; b < (i + batch) / BATCH && b < revsPerBatch.length; b++) for (const [did, rev] of revsPerBatch[b] ?? []) revs.set(did, rev);
    return revs;
  };

  const writeOurs = (batch: number) => async () => {
    const dir = tempDir();
    dirs.push(dir);
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: 2 * jsonBytes });
    for (let i = 0; i < entries.length; i += batch) {
      await store.commit({ entries: entries.slice(i, i + batch), cursor: { url: 'wss://bench.test', seq: i + batch }, revs: revsFor(i, batch) });
    }
    return { store, path: dir.path };
  };
  /** Raw lmdb-js: the events only, or (`sameWrites`) also each batch's revs and the cursor, as ours does. */
  const writeRaw = (batch: number, sameWrites = false) => async () => {
    const dir = tempDir();
    dirs.push(dir);
    const root = open({ path: dir.path, maxDbs: 4, noSubdir: false });
    const db = root.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
    const revsDb = root.openDB<string, string>({ name: 'revs', encoding: 'string' });
    const meta = root.openDB<unknown, string>({ name: 'meta' });
    for (let i = 0; i < entries.length; i += batch) {
      const end = Math.min(entries.length, i + batch);
      const revs = sameWrites ? revsFor(i, batch) : undefined;
      await root.transaction(() => {
        for (let j = i; j < end; j++) db.putSync(entries[j]!.timeUs, encoded[j]!); // encoded is parallel to entries
        if (revs) {
          for (const [did, rev] of revs) revsDb.putSync(did, rev);
          meta.putSync('upstreamCursor', { url: 'wss://bench.test', seq: end });
          meta.putSync('lastTimeUs', entries[end - 1]!.timeUs);
        }
      });
    }
    return { root, db };
  };

  // Writes: fresh buffers every run; the first run warms up. The sides take turns going first.
  let ours: Awaited<ReturnType<ReturnType<typeof writeOurs>>> | undefined;
  let raw: Awaited<ReturnType<ReturnType<typeof writeRaw>>> | undefined;
  const sides: Side[] = ['contrail', 'raw lmdb', 'raw lmdb, same writes'];
  for (let runIndex = 0; runIndex <= RUNS; runIndex++) {
    for (const batch of [BATCH, BIG_BATCH]) {
      const name = `write, batches of ${batch}`;
      const order = [...sides.slice(runIndex % sides.length), ...sides.slice(0, runIndex % sides.length)];
      for (const side of order) {
        let sample: Sample;
        if (side === 'contrail') {
          await ours?.store.close();
          sample = await timed(async () => {
            ours = await writeOurs(batch)();
            return entries.length;
          });
        } else if (side === 'raw lmdb') {
          await raw?.root.close();
          sample = await timed(async () => {
            raw = await writeRaw(batch)();
            return entries.length;
          });
        } else {
          let same: Awaited<ReturnType<ReturnType<typeof writeRaw>>> | undefined;
          sample = await timed(async () => {
            same = await writeRaw(batch, true)();
            return entries.length;
          });
          await same!.root.close();
        }
        if (runIndex > 0) record(name, side, sample);
      }
    }
  }

  // Replays over the last run's buffers: ours from the hot log (the store that wrote) and from
  // disk (the same buffer opened with no hot log), raw getRange; the first pass warms up.
  const hot = ours!.store;
  const rawDb = raw!.db;
  const disk = new EventStore({ dataDir: ours!.path, hotLogBytes: 0 });
  const rareFilter = (e: Entry) => e.collection === RARE_COLLECTION;
  const replay = (store: EventStore, filter?: (e: Entry) => boolean) => () => {
    let position = 0;
    let matched = 0;
    for (;;) {
      const read = store.readAfter(position, { maxEntries: READ_BATCH, maxScanned: 50_000, filter });
      if (read.position === position) break;
      position = read.position;
      matched += read.entries.length;
    }
    if (matched !== (filter ? rare : entries.length)) throw new Error(`replay matched ${matched}`);
    return entries.length; // events examined
  };
  const rawScan = (filtered: boolean) => () => {
    let scanned = 0;
    let matched = 0;
    for (const { key, value } of rawDb.getRange({ start: 0 })) {
      scanned++;
      if (!filtered) {
        // What a subscriber needs: the key and the JSON bytes.
        if (key > 0 && decodeRecords(value)[0]!.json.byteLength > 0) matched++;
      } else {
        // The collection straight out of the stored header, compared without making an Entry.
        const at = 17 + value.readUInt16BE(15); // after time_us, seq, kind and the DID (codec.ts)
        const length = value.readUInt16BE(at);
        if (length === RARE_COLLECTION.length && value.toString('latin1', at + 2, at + 2 + length) === RARE_COLLECTION) matched++;
      }
    }
    if (matched !== (filtered ? rare : entries.length)) throw new Error(`raw scan matched ${matched}`);
    return scanned;
  };
  const reads: Array<[string, Side, () => number]> = [
    ['replay all, from disk', 'contrail', replay(disk)],
    ['replay all, from disk', 'raw lmdb', rawScan(false)],
    ['replay 1% filter, from disk', 'contrail', replay(disk, rareFilter)],
    ['replay 1% filter, from disk', 'raw lmdb', rawScan(true)],
    ['replay all, from hot log', 'contrail', replay(hot)],
    ['replay 1% filter, from hot log', 'contrail', replay(hot, rareFilter)],
  ];
  for (let runIndex = 0; runIndex <= RUNS; runIndex++) {
    for (const [name, side, work] of reads) {
      const sample = await timed(work);
      if (runIndex > 0) record(name, side, sample);
    }
  }
  await disk.close();
  await hot.close();
  await raw!.root.close();
  for (const dir of dirs) dir.remove();

  const names = [...new Set([...samples.keys()].map((key) => key.slice(0, key.indexOf('\u0000'))))];
  const rate = (name: string, side: Side, field: keyof Sample) => {
    const list = samples.get(`${name}\u0000${side}`);
    return list ? median(list.map((s) => s[field])) : undefined;
  };
  const show = (value: number | undefined) => (value === undefined ? '-' : Math.round(value));
  return names.map((name) => {
    const ourRate = rate(name, 'contrail', 'rate')!;
    const rawRate = rate(name, 'raw lmdb', 'rate');
    const sameRate = rate(name, 'raw lmdb, same writes', 'rate');
    return {
      bench: 'store',
      case: name,
      'contrail events/s': show(ourRate),
      'raw events/s': show(rawRate),
      'contrail / raw': rawRate === undefined ? '-' : (ourRate / rawRate).toFixed(2),
      'raw, same writes': show(sameRate),
      'contrail / same': sameRate === undefined ? '-' : (ourRate / sameRate).toFixed(2),
      'contrail events/CPU-s': show(rate(name, 'contrail', 'cpuRate')),
      'raw events/CPU-s': show(rate(name, 'raw lmdb', 'cpuRate')),
    };
  });
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  const rows = await run();
  printTable(
    `store: ${EVENTS.toLocaleString('en-US')} synthetic events (${FRAMES.toLocaleString('en-US')} frames), median of ${RUNS} runs, one core; ` +
      `filter = collection ${RARE_COLLECTION}`,
    rows,
  );
}
