/**
 * bench/store-turns: the longest tasks the store gives the thread that commits (the gateway's
 * main thread, where live events are sent) at the live network's rate. A buffer is filled with
 * PREFILL events of bench/day's mix (default 300,000: an index of a few hundred thousand DIDs),
 * then fed 2,000 events/s as commits of 20 every 10 ms for SECONDS (default 20), as the
 * Ingester's group commits arrive; meanwhile a 1 ms timer samples the process's CPU time, so
 * each gap is the CPU of the tasks run between two ticks (idle costs none; a busy machine
 * distorts it far less than wall time). Prints those gaps' p99, p99.9 and largest, the GC
 * pauses in the window (the peer: the longest tasks that are not the store's), the event
 * loop's delay, and how late the commits ran.
 *
 *   nice -n 10 node --max-semi-space-size=64 --import tsx bench/store-turns.ts [prefill] [seconds]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from '../test/support/gateway.ts';
import { dayEvents } from './day-events.ts';
import { printTable } from './table.ts';

const PREFILL = Number(process.argv[2] ?? 300_000);
const SECONDS = Number(process.argv[3] ?? 20);
const COMMIT_EVERY_MS = 10;
const EVENTS_PER_COMMIT = 20;
const DICTIONARY = fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url));

const dir = tempDir('contrail-store-turns-');
const open = () => new EventStore({ dataDir: dir.path, hotLogBytes: 64 * 1024 * 1024, dictionary: readFileSync(DICTIONARY), fsync: false });
const source = dayEvents({ repos: 1_000_000, seed: 1, firstTimeUs: Date.UTC(2026, 0, 1) * 1000, eventsPerSecond: 2_000 });
const filling = open();
for (let written = 0; written < PREFILL; written += 2_000) await filling.commit({ entries: source.next(2_000), revs: new Map() });
// Closed and opened again, so the window starts with what is due sealed, as a gateway that has run a while.
await filling.close();
const store = open();
const batches = Array.from({ length: (SECONDS * 1000) / COMMIT_EVERY_MS }, () => source.next(EVENTS_PER_COMMIT));

const loopDelay = monitorEventLoopDelay({ resolution: 1 });
const gcPauses: number[] = [];
const gc = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push(entry.duration);
});
const cpuGaps: number[] = [];
let lastCpu = process.cpuUsage();
const sampler = setInterval(() => {
  const now = process.cpuUsage();
  cpuGaps.push((now.user - lastCpu.user + now.system - lastCpu.system) / 1000);
  lastCpu = now;
}, 1);
const late: number[] = [];
loopDelay.enable();
gc.observe({ entryTypes: ['gc'] });
await new Promise<void>((resolve) => {
  let next = 0;
  let due = performance.now();
  const commitDue = () => {
    late.push(performance.now() - due);
    void store.commit({ entries: batches[next++]!, revs: new Map() });
    if (next === batches.length) return resolve();
    due += COMMIT_EVERY_MS;
    setTimeout(commitDue, Math.max(0, due - performance.now()));
  };
  commitDue();
});
clearInterval(sampler);
loopDelay.disable();
gc.disconnect();
await store.close();
dir.remove();

const at = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.floor(p * (values.length - 1))] ?? 0;
const ms = (value: number) => Number(value.toFixed(1));
printTable(`bench/store-turns: ${(EVENTS_PER_COMMIT * 1000 / COMMIT_EVERY_MS).toLocaleString('en-US')} events/s for ${SECONDS} s into a buffer of ${PREFILL.toLocaleString('en-US')} events`, [
  { measure: 'CPU ms between two 1 ms ticks: p99 / p99.9 / largest', value: `${ms(at(cpuGaps, 0.99))} / ${ms(at(cpuGaps, 0.999))} / ${ms(at(cpuGaps, 1))}` },
  { measure: 'GC pauses: count / longest ms (peer)', value: `${gcPauses.length} / ${ms(at(gcPauses, 1))}` },
  { measure: 'event-loop delay ms: p99 / max', value: `${ms(loopDelay.percentile(99) / 1e6)} / ${ms(loopDelay.max / 1e6)}` },
  { measure: 'commit ran late ms: p99 / max', value: `${ms(at(late, 0.99))} / ${ms(at(late, 1))}` },
]);
