/**
 * bench/day: a day-sized buffer. Builds a buffer of EVENTS events (default 20 M; `npx tsx
 * bench/day.ts 2000000` for a quicker look) with the network's mix and sizes (day-events.ts)
 * straight through EventStore.commit in batches of 2,000, then prints:
 *
 *   - bytes per event on disk, all-in (the LMDB file over the events: blocks, directory, tail,
 *     indexes, LMDB's own pages and free space) and GB per day at 2,000 events/s;
 *   - the write rate (events per CPU-second through commit, sealing, compression and indexing);
 *   - replay from the oldest cursor with one DID (~30 matches), 100 DIDs, app.bsky.graph.block,
 *     app.bsky.feed.post and no filter, READ_BATCH events per read as the hub reads, each beside
 *     the plain scan of the same span in the same run (the same filter, but no selection for the
 *     store to plan with: every block decompressed and every event tested) — medians of RUNS;
 *   - retention's trim rate (removing the oldest tenth, indexes included);
 *   - the per-DID index rebuilt as after an inconsistency (the flag set, the buffer reopened): how
 *     long the start waited, and the time and rate until DID replays use the index again;
 *   - start-up time and RSS of a fresh process opening that buffer.
 *
 * WRITE_ONLY=1 skips the replays and the trim: the size, write and rebuild rows only (a quicker
 * before/after).
 *
 * Times are CPU time of this process (reads and writes run on its one thread; LMDB's writes are
 * synchronous here), so they say what a core spends whatever else the machine runs; wall-clock
 * times on a shared machine mostly measure the others. Run it under the shared lock:
 * `flock /work/bench.lock npx tsx bench/day.ts`. A day-sized run takes most of an hour, so each
 * measurement is also written to stderr as soon as it is taken: an interrupted run keeps them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Entry } from '../src/events/index.ts';
import { EventStore, type Selection } from '../src/store/index.ts';
import { tempDir } from '../test/support/gateway.ts';
import { dayEvents } from './day-events.ts';
import { median, printTable, type Row } from './table.ts';

const EVENTS = Number(process.argv[2] ?? 20_000_000);
const REPOS = 1_000_000;
const BATCH = 2_000;
const READ_BATCH = 512;
const READ_SCAN_LIMIT = 50_000;
const RUNS = Number(process.env.RUNS ?? 3);
/** The plain scans of a 20 M buffer take ~15 s each: SCAN_RUNS=1 keeps a day-sized run within minutes. */
const SCAN_RUNS = Number(process.env.SCAN_RUNS ?? RUNS);
const RATE = 2_000;
const WRITE_ONLY = process.env.WRITE_ONLY === '1';
const DICTIONARY = fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url));

if (process.argv[2] === '--open') {
  // Child: how long a fresh process takes to open the buffer, and its RSS once open.
  const started = performance.now();
  const [, , , dataDir = ''] = process.argv;
  const store = new EventStore({ dataDir, hotLogBytes: 64 * 1024 * 1024, dictionary: readFileSync(DICTIONARY), fsync: false });
  const span = store.span();
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(JSON.stringify({ seconds, rssBytes: process.memoryUsage().rss, events: span.eventCount }) + '\n');
  await store.close();
  process.exit(0);
}

const dir = tempDir('contrail-day-');
const openStore = () => new EventStore({ dataDir: dir.path, hotLogBytes: 64 * 1024 * 1024, dictionary: readFileSync(DICTIONARY), fsync: false });
let store = openStore();
const source = dayEvents({ repos: REPOS, seed: 1, firstTimeUs: Date.UTC(2026, 0, 1) * 1000, eventsPerSecond: RATE });
let jsonBytes = 0;
let writeCpuSeconds = 0;
const buildStarted = performance.now();
for (let written = 0; written < EVENTS; written += BATCH) {
  const entries = source.next(Math.min(BATCH, EVENTS - written));
  for (const entry of entries) jsonBytes += entry.json.byteLength;
  const started = process.cpuUsage();
  await store.commit({ entries, revs: new Map() });
  const used = process.cpuUsage(started);
  writeCpuSeconds += (used.user + used.system) / 1e6;
  if (written % 1_000_000 === 0 && written > 0) process.stderr.write(`  ${written / 1e6} M events, ${Math.round((performance.now() - buildStarted) / 1000)} s\n`);
}
const buildSeconds = (performance.now() - buildStarted) / 1000;
const progress = (measure: string, value: unknown) => process.stderr.write(`  ${measure}: ${JSON.stringify(value)}\n`);
progress('write: events per CPU-second', Math.round(EVENTS / writeCpuSeconds));
const span = store.span();
const tables = store.bytesByTable();
const fileBytes = statSync(join(dir.path, 'data.mdb')).size;
const bytesPerEvent = fileBytes / span.eventCount;
const sizeRows: Row[] = [
  { measure: 'bytes per event on disk, all-in (data.mdb ÷ events)', value: Number(bytesPerEvent.toFixed(1)) },
  { measure: 'bytes per event in used pages (blocks, tail, directory, DID index)', value: Number((span.bytes / span.eventCount).toFixed(1)) },
  { measure: '  of which compressed blocks', value: Number((tables.blocks / span.eventCount).toFixed(1)) },
  { measure: '  of which the per-DID index', value: Number((tables.didIndex / span.eventCount).toFixed(1)) },
  { measure: '  of which the block directory and seq map', value: Number((tables.directory / span.eventCount).toFixed(1)) },
  { measure: 'JSON bytes per event (what the store held before)', value: Math.round(jsonBytes / span.eventCount) },
  { measure: `GB per day at ${RATE.toLocaleString('en-US')} events/s`, value: Number(((bytesPerEvent * RATE * 86_400) / 1e9).toFixed(1)) },
  { measure: 'write: events per CPU-second through commit (seal, compress, index)', value: Math.round(span.eventCount / writeCpuSeconds) },
];
const title = `bench/day: ${span.eventCount.toLocaleString('en-US')} events (mean JSON ${Math.round(jsonBytes / span.eventCount)} B), built in ${Math.round(buildSeconds)} s`;

/**
 * The per-DID index rebuilt as after an inconsistency: the flag set, the buffer reopened, then the
 * wall time until DID replays use the index again (turns of the event loop given to nothing else),
 * the CPU time of this process meanwhile, how much of it the start (the constructor) held, and
 * the longest turn of the event loop after it.
 */
async function measureRebuild(): Promise<Row[]> {
  const events = store.span().eventCount;
  store.reportDidIndexInconsistent('bench/day: the rebuild measured');
  await store.close();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  store = openStore();
  const startSeconds = (performance.now() - started) / 1000;
  // The longest the event loop went without a turn meanwhile (what a live send could wait).
  let longestMs = 0;
  for (let last = performance.now(); !store.indexState.didIndexUsable; ) {
    await new Promise((resolve) => setImmediate(resolve));
    const now = performance.now();
    longestMs = Math.max(longestMs, now - last);
    last = now;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const rows: Row[] = [
    { measure: `per-DID index rebuild (${events.toLocaleString('en-US')} events): seconds the start waited`, value: Number(startSeconds.toFixed(2)) },
    { measure: '  seconds until DID replays use the index again (wall)', value: Number(seconds.toFixed(1)) },
    { measure: '  events per second (wall) / per CPU-second', value: `${Math.round(events / seconds)} / ${Math.round(events / cpuSeconds)}` },
    { measure: '  longest turn of the event loop after the start (ms)', value: Number(longestMs.toFixed(1)) },
  ];
  for (const { measure, value } of rows) progress(String(measure).trim(), value);
  return rows;
}

if (WRITE_ONLY) {
  printTable(title, [...sizeRows, ...(await measureRebuild())]);
  await store.close();
  dir.remove();
  process.exit(0);
}

// The filters: one DID with about 30 events, 100 random active DIDs, two collections, none.
const { dids, perDid } = source;
let oneDid = 0;
perDid.forEach((count, r) => {
  if (Math.abs(count - 30) < Math.abs(perDid[oneDid]! - 30)) oneDid = r;
});
const someDids: string[] = [];
for (let r = 7; someDids.length < 100; r = (r * 7919 + 13) % perDid.length) {
  const did = dids[r]!; // r is below perDid.length, which is dids.length
  if (perDid[r]! > 0 && !someDids.includes(did)) someDids.push(did);
}
const select = (wantedDids: string[], collections: string[]): Selection & { wants(e: Entry): boolean } => {
  const didSet = new Set(wantedDids);
  const collectionSet = new Set(collections);
  return {
    dids: didSet,
    collections: collectionSet,
    prefixes: [],
    wants: (e) => (didSet.size === 0 || didSet.has(e.did)) && (e.collection === null || collectionSet.size === 0 || collectionSet.has(e.collection)),
  };
};
const cases = [
  { name: `one DID (${perDid[oneDid]} events)`, filter: select([dids[oneDid]!], []) },
  { name: '100 DIDs', filter: select(someDids, []) },
  { name: 'app.bsky.graph.block', filter: select([], ['app.bsky.graph.block']) },
  { name: 'app.bsky.feed.post', filter: select([], ['app.bsky.feed.post']) },
  { name: 'no filter', filter: undefined },
];

/**
 * Replays from before the oldest event to the newest, as the hub's pump reads. Returns the CPU
 * seconds it took (one thread: what it costs a core, whatever else the machine runs) and the events.
 */
function replay(filter: ReturnType<typeof select> | undefined, planned: boolean): { seconds: number; events: number } {
  const started = process.cpuUsage();
  let position = 0;
  let events = 0;
  const wants = filter?.wants;
  for (;;) {
    const read = store.readAfter(position, { maxEntries: READ_BATCH, maxScanned: READ_SCAN_LIMIT, filter: wants, select: planned ? filter : undefined });
    events += read.entries.length;
    if (read.position === position && read.entries.length === 0) break;
    position = read.position;
  }
  const used = process.cpuUsage(started);
  return { seconds: (used.user + used.system) / 1e6, events };
}

const rows: Row[] = [];
for (const { name, filter } of cases) {
  const ours: number[] = [];
  const scans: number[] = [];
  let matched = 0;
  for (let run = 0; run < RUNS; run++) {
    const indexed = replay(filter, true);
    ours.push(indexed.seconds);
    matched = indexed.events;
    if (filter && run < SCAN_RUNS) {
      const scan = replay(filter, false);
      if (scan.events !== indexed.events) throw new Error(`${name}: the scan found ${scan.events}, the index ${indexed.events}`);
      scans.push(scan.seconds);
    }
  }
  const ms = median(ours) * 1000;
  const firstRun = ours[0] ?? NaN;
  const scanMs = scans.length ? median(scans) * 1000 : ms;
  rows.push({
    replay: name,
    events: matched,
    'contrail CPU ms': Number(ms.toFixed(ms < 100 ? 2 : 0)),
    // The first run finds few of its blocks in the block cache (a client's first replay); later ones most.
    'first run CPU ms': Number((firstRun * 1000).toFixed(firstRun < 0.1 ? 2 : 0)),
    'events/CPU-s': Math.round(matched / median(ours)),
    'plain scan CPU ms': filter ? Math.round(scanMs) : '(is the scan)',
    'scan ÷ contrail': filter ? Number((scanMs / ms).toFixed(1)) : 1,
  });
  progress(`replay ${name}`, rows.at(-1));
}

// Retention: the oldest tenth, a block per transaction as Retention does.
const trimTarget = Math.floor(span.eventCount / 10);
const trimStarted = process.cpuUsage();
let trimmed = 0;
while (trimmed < trimTarget) {
  const n = await store.trimBefore(Number.MAX_SAFE_INTEGER, 1);
  if (n === 0) break;
  trimmed += n;
}
const trimUsed = process.cpuUsage(trimStarted);
const trimRate = trimmed / ((trimUsed.user + trimUsed.system) / 1e6);
progress('retention trim: events per CPU-second', Math.round(trimRate));
const rebuildRows = await measureRebuild();
await store.close();

const opened = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--open', dir.path], { encoding: 'utf8' });
const startup = JSON.parse(opened.stdout.trim().split('\n').at(-1) ?? '{}') as { seconds: number; rssBytes: number; events: number };

printTable(title, [
  ...sizeRows,
  { measure: 'retention trim: events per CPU-second (blocks and their index entries)', value: Math.round(trimRate) },
  ...rebuildRows,
  { measure: `start-up: seconds to open the buffer (${startup.events?.toLocaleString('en-US')} events)`, value: Number(startup.seconds?.toFixed(2)) },
  { measure: 'start-up: RSS once open (MB)', value: Math.round((startup.rssBytes ?? 0) / 1e6) },
]);
printTable(`replay from the oldest cursor to the newest event, CPU time of the reading thread, medians of ${RUNS} (plain scans: ${SCAN_RUNS})`, rows);
dir.remove();
