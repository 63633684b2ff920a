/**
 * What starting a replay worker thread costs: the time from `new Worker` until it says it is ready
 * (it has loaded its modules and opened the buffer), and the CPU the process used meanwhile (the
 * new thread's, the main thread waiting idle). The compiled worker (dist/replay-worker.js, what
 * the gateway runs) and the same from source through tsx (what test gateways run), beside a
 * thread that loads nothing and only says it is ready, the floor, measured the same way in the
 * same run. `--against <checkout>` adds another checkout's worker (built: `npm run build` there),
 * e.g. a detached worktree of an earlier commit. The cases take turns, run by run; medians.
 * `npx tsx bench/replay-worker-start.ts [--runs N] [--against <checkout>]` (build first).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { tempDir } from '../test/support/gateway.ts';
import { EventStore } from '../src/store/index.ts';
import { EventCompressor } from '../src/server/compression.ts';
import type { ReplayWorkerData } from '../src/server/replay-pool.ts';
import { median, printTable, type Row } from './table.ts';

const RUNS = 10;
const HERE = resolve(import.meta.dirname, '..');

interface Case {
  name: string;
  start(workerData: ReplayWorkerData): Worker;
}

function compiled(label: string, root: string): Case {
  return { name: `${label}: compiled, dist/replay-worker.js`, start: (workerData) => new Worker(resolve(root, 'dist/replay-worker.js'), { workerData }) };
}

/** As test gateways start it (threads/worker-pool.ts's startWorkerModule): tsx registered in the thread, then the source imported. */
function fromSource(label: string, root: string): Case {
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = pathToFileURL(resolve(root, 'src/server/replay-worker.ts')).href;
  const script = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`;
  return { name: `${label}: source through tsx`, start: (workerData) => new Worker(script, { eval: true, workerData }) };
}

const EMPTY: Case = {
  name: 'a thread that only says it is ready (the floor)',
  start: () => new Worker(`require('node:worker_threads').parentPort.postMessage({ id: -1, ready: true })`, { eval: true }),
};

/** ms until the worker's ready message, and the process's CPU ms meanwhile. */
async function startOnce(c: Case, workerData: ReplayWorkerData): Promise<{ ms: number; cpuMs: number }> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const worker = c.start(workerData);
  await new Promise<void>((resolveReady, reject) => {
    worker.on('message', (message: { ready?: boolean }) => message.ready && resolveReady());
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${c.name}: the worker exited (${code}) before it was ready`)));
  });
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  await worker.terminate();
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: String(RUNS) }, against: { type: 'string' } } });
const runs = Number(values.runs);
const cases = [compiled('this checkout', HERE), fromSource('this checkout', HERE)];
if (values.against) cases.push(compiled(values.against, resolve(values.against)), fromSource(values.against, resolve(values.against)));
cases.push(EMPTY);

// A buffer the workers open (empty: opening it is part of every start, reading is not measured).
const dir = tempDir('contrail-bench-worker-start-');
const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
const compressor = new EventCompressor(readFileSync(resolve(HERE, 'dictionaries/contrail-v1.zstd-dict')));
const workerData: ReplayWorkerData = {
  location: store.location,
  blockCacheBytes: store.blockCacheBytes,
  dictionary: compressor.dictionary,
  level: compressor.level,
  replayLevel: compressor.replayLevel,
  lowerPriority: false,
};
try {
  const results = new Map(cases.map((c) => [c, [] as Array<{ ms: number; cpuMs: number }>]));
  await startOnce(cases[0]!, workerData); // the first start in the process warms the file cache and tsx's
  for (let run = 0; run < runs; run++) {
    for (const [c, measured] of results) measured.push(await startOnce(c, workerData));
  }
  const floor = median(results.get(EMPTY)!.map((r) => r.cpuMs));
  const rows: Row[] = [...results].map(([c, measured]) => ({
    case: c.name,
    'ms to ready': median(measured.map((r) => r.ms)).toFixed(1),
    'CPU ms': median(measured.map((r) => r.cpuMs)).toFixed(1),
    'CPU ms over the floor': (median(measured.map((r) => r.cpuMs)) - floor).toFixed(1),
  }));
  printTable(`replay worker start: medians of ${runs} starts each, taking turns`, rows);
} finally {
  await store.close();
  dir.remove();
}
