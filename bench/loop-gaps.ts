/**
 * What a process's main thread did between the turns of its event loop, sampled by a 1 ms timer:
 * at each tick the wall clock, the thread's time on a CPU and its time runnable but waiting for
 * one (Linux /proc/thread-self/schedstat, ns), and where GC ran (perf_hooks `gc` entries with
 * their kind). A late event then tells whether the thread was running (ours or GC), waiting for a
 * core, or asleep (waiting on another thread or the kernel).
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';

/** Wall-clock µs since the epoch, comparable across processes on this machine. */
const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;

/** Tick i: wall µs, then this thread's ns on a CPU and ns waiting for one, since the recorder started. */
export interface Gaps {
  wallUs: number[];
  runNs: number[];
  waitNs: number[];
  /** GC pauses on this thread: start and end in wall µs, and kind ('scavenge', 'mark-compact', 'other'). */
  gc: Array<{ fromUs: number; toUs: number; kind: string }>;
  /** Over the whole recording, ms: the process's other threads (V8's GC and compiler helpers, libuv, LMDB's) on a CPU and waiting for one, and the machine's busy CPU time (every process, /proc/stat). */
  otherThreadsRunMs: number;
  otherThreadsWaitMs: number;
  machineBusyMs: number;
}

/** Each thread of this process: ns on a CPU and ns waiting for one. */
function threadTimes(): Map<string, [number, number]> {
  const times = new Map<string, [number, number]>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ');
      times.set(tid, [Number(run), Number(wait)]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return times;
}

/** The machine's busy CPU time so far, ms (user, nice, system, irq, softirq, steal; /proc/stat counts in 1/100 s). */
function machineBusyMs(): number {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) * 10;
}

export class GapRecorder {
  readonly #fd = openSync('/proc/thread-self/schedstat', 'r');
  readonly #buffer = Buffer.alloc(128);
  readonly #gaps: Gaps = { wallUs: [], runNs: [], waitNs: [], gc: [], otherThreadsRunMs: 0, otherThreadsWaitMs: 0, machineBusyMs: 0 };
  readonly #threadsAtStart = threadTimes();
  readonly #machineAtStart = machineBusyMs();
  readonly #timer: NodeJS.Timeout;
  readonly #observer: PerformanceObserver;

  constructor() {
    this.#observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const fromUs = (performance.timeOrigin + entry.startTime) * 1000;
        this.#gaps.gc.push({ fromUs, toUs: fromUs + entry.duration * 1000, kind: gcKind((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind) });
      }
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    this.#tick();
    this.#timer = setInterval(() => this.#tick(), 1);
  }

  #tick(): void {
    const read = readSync(this.#fd, this.#buffer, 0, this.#buffer.length, 0);
    const [run, wait] = this.#buffer.toString('latin1', 0, read).split(' ');
    this.#gaps.wallUs.push(nowMicros());
    this.#gaps.runNs.push(Number(run));
    this.#gaps.waitNs.push(Number(wait));
  }

  stop(): Gaps {
    clearInterval(this.#timer);
    this.#tick();
    const main = String(process.pid);
    for (const [tid, [run, wait]] of threadTimes()) {
      if (tid === main) continue;
      const [runBefore, waitBefore] = this.#threadsAtStart.get(tid) ?? [0, 0];
      this.#gaps.otherThreadsRunMs += (run - runBefore) / 1e6;
      this.#gaps.otherThreadsWaitMs += (wait - waitBefore) / 1e6;
    }
    this.#gaps.machineBusyMs = machineBusyMs() - this.#machineAtStart;
    this.#observer.disconnect();
    closeSync(this.#fd);
    return this.#gaps;
  }
}

function gcKind(kind: number | undefined): string {
  if (kind === constants.NODE_PERFORMANCE_GC_MINOR) return 'scavenge';
  if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) return 'mark-compact';
  return 'other';
}

/** What the thread did in [fromUs, toUs], ms: GC by kind, and outside GC running, waiting for a core, asleep. */
export interface Spent {
  scavenge: number;
  markCompact: number;
  otherGc: number;
  run: number;
  waitCore: number;
  asleep: number;
  /** The longest gap between two ticks overlapping the span, ms. */
  longestGap: number;
}

/**
 * Splits [fromUs, toUs] of the recorded thread's time. Run and wait come from the ticks around the
 * span, spread evenly over each tick's gap; GC pauses are taken out of them, so the parts add up
 * to the span.
 */
export function spentIn(gaps: Gaps, fromUs: number, toUs: number): Spent {
  const spent: Spent = { scavenge: 0, markCompact: 0, otherGc: 0, run: 0, waitCore: 0, asleep: 0, longestGap: 0 };
  if (toUs <= fromUs) return spent;
  for (const pause of gaps.gc) {
    const ms = overlap(pause.fromUs, pause.toUs, fromUs, toUs) / 1000;
    if (pause.kind === 'scavenge') spent.scavenge += ms;
    else if (pause.kind === 'mark-compact') spent.markCompact += ms;
    else spent.otherGc += ms;
  }
  let run = 0;
  let wait = 0;
  for (let i = firstTickAfter(gaps.wallUs, fromUs); i < gaps.wallUs.length; i++) {
    const start = gaps.wallUs[i - 1]!;
    const end = gaps.wallUs[i]!;
    if (start >= toUs) break;
    const share = overlap(start, end, fromUs, toUs) / (end - start);
    run += (share * (gaps.runNs[i]! - gaps.runNs[i - 1]!)) / 1e6;
    wait += (share * (gaps.waitNs[i]! - gaps.waitNs[i - 1]!)) / 1e6;
    spent.longestGap = Math.max(spent.longestGap, (end - start) / 1000);
  }
  const span = (toUs - fromUs) / 1000;
  const gc = spent.scavenge + spent.markCompact + spent.otherGc;
  // A GC pause is the thread's own run and wait too: what is left of them is outside GC.
  const busy = Math.min(span, run + wait);
  const outsideGc = Math.max(0, busy - gc);
  spent.run = busy > 0 ? (outsideGc * run) / (run + wait) : 0;
  spent.waitCore = busy > 0 ? (outsideGc * wait) / (run + wait) : 0;
  spent.asleep = Math.max(0, span - gc - outsideGc);
  return spent;
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}

/** Index of the first tick after `us` (at least 1: a gap needs the tick before it). */
function firstTickAfter(ticks: number[], us: number): number {
  let low = 1;
  let high = ticks.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ticks[mid]! <= us) low = mid + 1;
    else high = mid;
  }
  return low;
}
