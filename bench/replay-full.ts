/**
 * bench/replay-full: how fast one client replays a whole buffer from disk (cursor=0 to the tip),
 * as JSON and compressed, beside the store's own scan of the same buffer in the same run.
 *
 *   npx tsx bench/replay-full.ts [--events 1000000] [--runs 3] [--buffer DIR] [--cases scan,json,zstd] [--clients 1] [--zstd-replay-level 1] [--replay-workers 0]
 *
 * The buffer (bench/replay-buffer.ts: the network's mix, written through the EventStore) is
 * served by a gateway (uWS, replays on the main thread unless --replay-workers, nothing arriving live) on a fresh copy
 * per run, so every replay starts with a cold block cache. The client is a child process that
 * counts messages without parsing them (bench/frame-counter.ts), so what is measured is the
 * server's work; it is started before the clock (its start-up, ~0.5 s, is not the replay's), which
 * then runs from its connect to its last event; each row gives events/s (wall) and events per CPU-second of the gateway's
 * process (every thread), which other load on the machine distorts less, and per CPU-second of its main thread
 * alone (Linux: its on-CPU nanoseconds in /proc/self/task/<pid>/schedstat; the main thread's id is the pid): with
 * replay workers, what the main thread could carry if the workers had cores of their own; and the replay workers'
 * threads' own CPU per event (their schedstat, by the thread ids they report: ReplayPool.threadIds), what bounds one
 * client's rate when one worker at a time reads its batches. The peer is the scan
 * a replay is built on: EventStore.readAfter over the whole buffer in batches of 512, no filter,
 * in the same process (decompressing and decoding every block; nothing sent). With --clients N,
 * N clients replay at once (as in the soak), sharing the blocks read; the rates count every
 * client's events, and bytes/event is what the server sent per event (its contrail_bytes_sent_total).
 * --zstd-replay-level sets the gateway's flag of that name (the zstd level of replayed frames);
 * --replay-workers too (0, the default on this 2-core machine: every replay on the main thread).
 */
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_REPLAY_LEVEL } from '../src/server/index.ts';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { startTestGateway, tempDir } from '../test/support/gateway.ts';
import { httpGet } from '../test/support/subscribe-client.ts';
import { Clients } from './fanout.ts';
import { replayBuffer } from './replay-buffer.ts';
import { median, printTable, type Row } from './table.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    // Keep the written buffer here and reuse it on later runs with the same --events.
    buffer: { type: 'string' },
    cases: { type: 'string', default: 'scan,json,zstd' },
    clients: { type: 'string', default: '1' },
    'zstd-replay-level': { type: 'string', default: String(DEFAULT_REPLAY_LEVEL) },
    'replay-workers': { type: 'string', default: '0' },
  },
});
const EVENTS = Number(values.events);
const RUNS = Number(values.runs);
const CLIENTS = Number(values.clients);
const MB = 1024 * 1024;

type Case = 'scan' | 'json' | 'zstd';
const CASES: Array<{ key: Case; name: string }> = [
  { key: 'scan', name: 'peer: EventStore.readAfter scan, batches of 512, nothing sent' },
  { key: 'json', name: `${clientsText('JSON client')}, cursor=0 → tip` },
  { key: 'zstd', name: `${clientsText('compressed client')} (compress=true), cursor=0 → tip` },
].filter((which) => values.cases.split(',').includes(which.key)) as Array<{ key: Case; name: string }>;

function clientsText(kind: string): string {
  return CLIENTS === 1 ? `one ${kind}` : `${CLIENTS} ${kind}s at once`;
}

interface Sample {
  eventsPerSecond: number;
  eventsPerCpuSecond: number;
  /** NaN where there is no /proc (not Linux). */
  eventsPerMainThreadCpuSecond: number;
  /** The replay workers' threads' own CPU per event, µs (NaN without workers or /proc). */
  workerMicrosecondsPerEvent: number;
  /** Bytes the server sent per event (NaN for the scan). */
  bytesPerEvent: number;
}

/** Linux: a thread's time on a CPU in nanoseconds, the first field of its schedstat (not stat's utime+stime, counted in 10 ms ticks). */
const HAS_SCHEDSTAT = existsSync(`/proc/self/task/${process.pid}/schedstat`);

/** The CPU seconds the threads with these ids (the main thread's is the pid) have used so far; NaN where there is no /proc, or one of them has ended (a worker that died and was started again: its time is not all here). */
function threadsCpuSeconds(tids: readonly number[]): number {
  if (!HAS_SCHEDSTAT) return NaN;
  let seconds = 0;
  for (const tid of tids) {
    const file = `/proc/self/task/${tid}/schedstat`;
    if (!existsSync(file)) return NaN;
    seconds += Number(readFileSync(file, 'utf8').split(' ')[0]) / 1e9;
  }
  return seconds;
}

function progress(text: string): void {
  process.stderr.write(`replay-full: ${text}\n`);
}

async function runCase(which: Case, buffer: string): Promise<Sample> {
  const dir = tempDir('contrail-replay-full-');
  const dataDir = join(dir.path, 'data');
  cpSync(buffer, dataDir, { recursive: true });
  const relay = await FakeRelay.start();
  const gateway = await startTestGateway(relay.url, dataDir, { transport: 'uws', replayWorkers: Number(values['replay-workers']), hotCacheBytes: 64 * MB, zstdReplayLevel: Number(values['zstd-replay-level']) }, { hub: { slowWindowMs: 3_600_000, pingIntervalMs: 3_600_000 } });
  // The clients' process is started (and has loaded its code) before the clock starts: its start-up is not the replay's.
  const clients = which === 'scan' ? undefined : await Clients.start();
  try {
    // Each worker tells its thread id once it has opened the buffer.
    await gateway.server.replayPool?.ready();
    const workerThreads = gateway.server.replayPool?.threadIds() ?? [];
    const cpu = process.cpuUsage();
    const mainCpu = threadsCpuSeconds([process.pid]);
    const workersCpu = threadsCpuSeconds(workerThreads);
    const started = performance.now();
    let events = 0;
    if (which === 'scan') {
      let position = 0;
      for (;;) {
        const read = gateway.store.readAfter(position, { maxEntries: 512, maxScanned: 10_000, maxBytes: 256 * 1024 });
        events += read.entries.length;
        gateway.store.release(read);
        if (read.position === position) break;
        position = read.position;
      }
    } else {
      const url = `ws://127.0.0.1:${gateway.port}/subscribe?cursor=0${which === 'zstd' ? '&compress=true' : ''}`;
      await clients!.connect(Array<string>(CLIENTS).fill(url), { countOnly: true });
      while ((events = await clients!.received()) < EVENTS * CLIENTS && performance.now() - started < 600_000) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const mainUsed = threadsCpuSeconds([process.pid]) - mainCpu;
    // The scan reads on the main thread: the workers' idle time is no figure of its.
    const workersUsed = workerThreads.length === 0 || which === 'scan' ? NaN : threadsCpuSeconds(workerThreads) - workersCpu;
    const expected = which === 'scan' ? EVENTS : EVENTS * CLIENTS;
    if (events < expected) throw new Error(`${which}: only ${events} of ${expected} events`);
    const bytesPerEvent = which === 'scan' ? NaN : (await bytesSent(gateway.metricsPort)) / events;
    return { eventsPerSecond: events / seconds, eventsPerCpuSecond: events / ((used.user + used.system) / 1e6), eventsPerMainThreadCpuSecond: events / mainUsed, workerMicrosecondsPerEvent: (workersUsed / events) * 1e6, bytesPerEvent };
  } finally {
    await clients?.close();
    await gateway.stop();
    await relay.stop();
    dir.remove();
  }
}

/** Every contrail_bytes_sent_total sample on the gateway's /metrics, summed. */
async function bytesSent(metricsPort: number): Promise<number> {
  const text = (await httpGet(metricsPort, '/metrics')).body.toString();
  return text
    .split('\n')
    .filter((line) => line.startsWith('contrail_bytes_sent_total{'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

const buffer = await replayBuffer(EVENTS, 2_000, values.buffer, progress);
const results = new Map<Case, Sample[]>(CASES.map((c) => [c.key, []]));
for (let run = 0; run < RUNS; run++) {
  for (const which of run % 2 === 0 ? CASES : [...CASES].reverse()) {
    progress(`run ${run + 1}/${RUNS}: ${which.name}`);
    results.get(which.key)!.push(await runCase(which.key, buffer.path));
  }
}
buffer.remove();

function microseconds(value: number): string {
  return Number.isNaN(value) ? '' : value.toFixed(2);
}

const scanPerCpu = median((results.get('scan') ?? []).map((s) => s.eventsPerCpuSecond));
const rows: Row[] = CASES.map((which) => {
  const samples = results.get(which.key)!;
  const perCpu = median(samples.map((s) => s.eventsPerCpuSecond));
  return {
    case: which.name,
    'events/s': Math.round(median(samples.map((s) => s.eventsPerSecond))),
    'events per CPU-second': Math.round(perCpu),
    'vs scan (CPU)': Number.isNaN(scanPerCpu) ? '' : `${(perCpu / scanPerCpu).toFixed(2)}×`,
    'events per main-thread CPU-second': Math.round(median(samples.map((s) => s.eventsPerMainThreadCpuSecond))),
    "workers' CPU µs/event": microseconds(median(samples.map((s) => s.workerMicrosecondsPerEvent))),
    'bytes/event': which.key === 'scan' ? '' : median(samples.map((s) => s.bytesPerEvent)).toFixed(1),
    'events/s per run': samples.map((s) => Math.round(s.eventsPerSecond).toLocaleString('en-US')).join(' / '),
  };
});
printTable(`${clientsText('client')} replaying a ${EVENTS.toLocaleString('en-US')}-event buffer from disk; medians of ${RUNS} runs`, rows);
