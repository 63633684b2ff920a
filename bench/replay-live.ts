/**
 * bench/replay-live: live clients' latency while many clients replay a large buffer, with replays
 * read on worker threads (--replay-workers 1) beside the same replays read on the main thread
 * (--replay-workers 0) and beside no replays at all, in the same run.
 *
 *   npx tsx bench/replay-live.ts [--events 1000000] [--seconds 10] [--warmup 3] [--runs 3] [--replays 20] [--cases live,main,worker]
 *     [--buffer DIR] [--hot-log-mib 64] [--relay child|in-process] [--profile DIR] [--survivors DIR [--allocations]] [--tail]
 *     [--live-clients ws|raw] [--replay-clients-nice 0]
 *
 * The instrument shares the gateway's cores: the live clients' process (what measures), the replay
 * clients' (stand-ins for remote clients) and the relay's. `--live-clients raw` measures with
 * bench/frame-counter.ts's frame reader instead of 20 `ws` clients (each sample read from the
 * message's first bytes), and `--replay-clients-nice N` runs the replay clients' process at a
 * lower OS priority: both take less of the cores from the gateway and the live clients, as remote
 * clients would; the replay clients at nice 19 may also read, and so be sent, less than they would
 * on their own machines (the replayed events/s says so). The default is the measurement as before.
 *
 * With --tail, the gateway's and the live clients' main threads are recorded in the window
 * (bench/loop-gaps.ts: a 1 ms timer, the thread's CPU and run-queue time, GC pauses by kind), and a
 * table per run splits the live tail: for the samples at or above the p99, their server spans
 * (time_us → published) merged into one timeline and split into the gateway's scavenges,
 * mark-compacts, its own running, its wait for a core and its sleep; their transit spans
 * (published → arrival) likewise in the live clients' process.
 *
 * With --profile, the gateway process's main thread is CPU-profiled (node:inspector, 500 µs) in
 * each window, and a third table splits its wall time by stage (a sample goes to the innermost
 * stage on its stack), summed over the runs; the profiles are written to DIR. The profiler costs
 * CPU too: compare splits with splits, latencies with unprofiled runs.
 *
 * With --survivors, V8's sampling heap profiler records the gateway process's allocations in each
 * window and forgets those a young-generation collection freed: what is left at the window's end
 * is what survived a scavenge (each one copied, the scavenge's cost), and (without --expose-gc,
 * which lets it run a last scavenge first) what was allocated since the last one. With
 * --allocations it keeps every allocation instead (what fills the young generation).
 * The sites that allocated the most of it are printed per run; the profiles are written to DIR.
 *
 * A buffer of --events events with the network's mix (bench/day-events.ts) is written once
 * through the EventStore (and kept in --buffer DIR for later runs); each case starts a gateway
 * (uWS) on a fresh copy of it, fed by a local relay at 2,000 frames/s of synthetic firehose
 * commits (decoded, committed to LMDB, published: the whole ingest path). The relay runs in a
 * child process of its own (bench/replay-live-relay.ts), as a deployed gateway's relay is not in
 * its process; `--relay in-process` runs it on the gateway's main thread, as before session 11
 * (its sends and pacing were 5–7 % of that thread). 20 unfiltered live clients (one child process) sample latency as
 * arrival − time_us; --replays clients (another child process, a quarter of them compressed)
 * replay from cursor=0, the oldest event, for the whole window. The window follows --warmup
 * seconds of the same live feed (the replays already running), so it measures a warm gateway. The
 * cases alternate run by run; the table shows medians of the runs' p50/p99 and the replay clients' events/s.
 *
 * time_us is given when a frame is decoded, so the latency covers decode → commit → publish →
 * socket → client: a replay step that runs on the main thread between a frame's decode and its
 * commit (both wait for the same turn of the event loop) shows in it, as does CPU the replays
 * take from the main thread on a small machine.
 */
import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { Session } from 'node:inspector/promises';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wallClockMicros } from '../src/events/clock.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { startTestGateway, tempDir } from '../test/support/gateway.ts';
import { Clients, paced, percentile } from './fanout.ts';
import { GapRecorder, spentIn, type Gaps, type Spent } from './loop-gaps.ts';
import { splitByStage, type Profile, type Stages } from './profile-split.ts';
import { replayBuffer } from './replay-buffer.ts';
import { relayFrames } from './replay-live-relay.ts';
import { median, printTable, type Row } from './table.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '10' },
    // Seconds of live frames before the window: the gateway's first seconds (JIT compiling the
    // path, the young generation growing) are not the steady state a long-running gateway is in.
    warmup: { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    replays: { type: 'string', default: '20' },
    // Which cases to run: live (no replays), main (replays on the main thread), worker (a replay worker).
    cases: { type: 'string', default: 'live,main,worker' },
    // Keep the written buffer here and reuse it on later runs with the same --events (saves its writing time).
    buffer: { type: 'string' },
    // CPU-profile the gateway process's main thread in each case's window: print where its time went, and write the profiles here (<case>-<run>.cpuprofile).
    profile: { type: 'string' },
    // The gateway's hot log (--hot-cache-bytes), MiB: what its entries cost the GC shows against a small one.
    'hot-log-mib': { type: 'string', default: '64' },
    // Record what survives the gateway's scavenges in each window (sampling heap profiler): print its allocation sites, write the profiles here.
    survivors: { type: 'string' },
    // With --survivors: keep every allocation, not only the survivors (where the young generation fills from).
    allocations: { type: 'boolean', default: false },
    // Where the relay runs: a child process of its own (child), or the gateway's process (in-process, as before session 11).
    relay: { type: 'string', default: 'child' },
    // Split the live tail's time into GC, running, waiting for a core, asleep (gateway and live clients' processes).
    tail: { type: 'boolean', default: false },
    // The live clients: ws (20 `ws` clients, as measured since session 9), or raw (bench/frame-counter.ts's frame reader, each sample read from the message's first bytes: a process that costs the shared cores less).
    'live-clients': { type: 'string', default: 'ws' },
    // The replay clients' process's nice value, every thread of it (0: as the other processes). They stand in for remote clients, whose reading costs a deployed gateway's machine nothing.
    'replay-clients-nice': { type: 'string', default: '0' },
  },
});
if (values.allocations && !values.survivors) throw new Error('--allocations needs --survivors DIR (the heap profiler it changes runs only with it)');
if (values.relay !== 'child' && values.relay !== 'in-process') throw new Error(`--relay: child or in-process, not ${values.relay}`);
if (values['live-clients'] !== 'ws' && values['live-clients'] !== 'raw') throw new Error(`--live-clients: ws or raw, not ${values['live-clients']}`);
const REPLAY_CLIENTS_NICE = Number(values['replay-clients-nice']);
if (!Number.isInteger(REPLAY_CLIENTS_NICE) || REPLAY_CLIENTS_NICE < 0 || REPLAY_CLIENTS_NICE > 19) throw new Error(`--replay-clients-nice: 0 to 19, not ${values['replay-clients-nice']}`);
const EVENTS = Number(values.events);
const SECONDS = Number(values.seconds);
const WARMUP_SECONDS = Number(values.warmup);
const RUNS = Number(values.runs);
const REPLAYS = Number(values.replays);
const RATE = 2_000;
const LIVE_CLIENTS = 20;
const MB = 1024 * 1024;

interface Case {
  key: string;
  name: string;
  replays: number;
  replayWorkers: number;
}

const CASES: Case[] = [
  { key: 'live', name: 'live only, no replays', replays: 0, replayWorkers: 1 },
  { key: 'main', name: `${REPLAYS} full replays, read on the main thread (--replay-workers 0)`, replays: REPLAYS, replayWorkers: 0 },
  { key: 'worker', name: `${REPLAYS} full replays, read on a worker thread (--replay-workers 1)`, replays: REPLAYS, replayWorkers: 1 },
].filter((which) => values.cases.split(',').includes(which.key));

/** The main thread's stages in a profiled window, by the functions that run them. */
const STAGES: Stages = [
  ['GC', ['(garbage collector)']],
  ['idle', ['(idle)']],
  ['replay reads on this thread (readAfter)', ['readAfter']],
  ["workers' answers decoded (decodeAnswer)", ['decodeAnswer']],
  ['replay sends (#sendBatch)', ['#sendBatch']],
  ['replay turns, rest', ['step', '#run']],
  ['live publish (#publish)', ['#publish']],
  ['commit (store, sealing)', ['commit', '#continueSeal']],
  ['frames decoded to events', ['decodeFrame', 'parseMessage', 'buildEvents']],
  ["the bench's relay (paced)", ['paced']],
];

interface Sample {
  /** µs of the main thread per stage in the window (with --profile). */
  stages?: Map<string, number>;
  p50: number;
  p99: number;
  max: number;
  replayEventsPerSecond: number;
  /** The buffer's events the replays had received by the window's end, % of theirs all (each one's count up to the buffer's size: a replay sends the buffer first, and what it sends after is live events): at 100 they reached the tip in the window (and the case measured live clients without replays for the rest). */
  replayedShare: number;
  /** time_us → the commit's publish done (every live socket written): the server's part, ms. */
  serverP50: number;
  serverP99: number;
  /** publish done → the client's arrival: socket, kernel, the client process's own turn, ms. */
  transitP50: number;
  transitP99: number;
  /** The gateway's event loop (this process's main thread): delay p99 and max, ms. */
  loopP99: number;
  loopMax: number;
  /** Garbage collection on the gateway's main thread during the window: total and longest pause, ms. */
  gcTotal: number;
  gcMax: number;
  /** Of those, the scavenges (young-generation collections): how many, and their median pause, ms. */
  scavenges: number;
  scavengeMedian: number;
  /** CPU used in the window, % of one core: this process (the gateway, and with --relay in-process the relay), the live clients' and the replay clients' processes. */
  cpuServer: number;
  cpuLive: number;
  cpuReplay: number;
  /** The live clients' own event-loop delay p99, ms (their wait for the CPU shows in their latency). */
  liveLoopP99: number;
  /** With --tail: where the samples at or above the p99 spent their time. */
  tail?: TailSplit;
  /** With --tail and --profile: the gateway's CPU in its loop gaps of STALL_MS or more, µs by stage. */
  stalls?: Map<string, number>;
  /** With --survivors: the window's allocations left after its scavenges, bytes by allocation site (its innermost frames). */
  survivors?: Map<string, number>;
}

interface TailSplit {
  /** The whole window, ms: the gateway's main thread on a CPU and waiting for one, its other threads likewise, the machine's busy CPU (all processes) and the wall time. */
  window: { mainRun: number; mainWait: number; otherRun: number; otherWait: number; machineBusy: number; wall: number };
  /** Of the tail samples' latency, the share before the publish was done (the server's part), %. */
  serverShare: number;
  /** The tail's server spans, merged, split by what the gateway's main thread did, ms. */
  server: Spent & { span: number };
  /** The tail's transit spans, merged, split by what the live clients' main thread did, ms. */
  transit: Spent & { span: number };
}

/** Merges [from, to] spans into disjoint ones and adds up what the recorded thread did in them. */
function splitSpans(spans: Array<[number, number]>, gaps: Gaps): Spent & { span: number } {
  spans.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [from, to] of spans) {
    const last = merged.at(-1);
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else merged.push([from, to]);
  }
  const total = { span: 0, scavenge: 0, markCompact: 0, otherGc: 0, run: 0, waitCore: 0, asleep: 0, longestGap: 0 };
  for (const [from, to] of merged) {
    const spent = spentIn(gaps, from, to);
    total.span += (to - from) / 1000;
    total.scavenge += spent.scavenge;
    total.markCompact += spent.markCompact;
    total.otherGc += spent.otherGc;
    total.run += spent.run;
    total.waitCore += spent.waitCore;
    total.asleep += spent.asleep;
    total.longestGap = Math.max(total.longestGap, spent.longestGap);
  }
  return total;
}

/** The samples at or above the p99: their server and transit spans, split by the two processes' recorded threads. */
function splitTail(samples: number[], timeUs: number[], publishedAt: Map<number, number>, gatewayGaps: Gaps, clientGaps: Gaps): TailSplit {
  const p99 = percentile(samples, 99);
  const serverSpans: Array<[number, number]> = [];
  const transitSpans: Array<[number, number]> = [];
  let serverPart = 0;
  let all = 0;
  samples.forEach((latency, i) => {
    const published = publishedAt.get(timeUs[i]!);
    // A sample whose arrival reads before its publish (the two processes' clocks differ by a little) has no transit span.
    if (latency < p99 || published === undefined) return;
    serverSpans.push([timeUs[i]!, published]);
    if (timeUs[i]! + latency > published) transitSpans.push([published, timeUs[i]! + latency]);
    serverPart += published - timeUs[i]!;
    all += latency;
  });
  const ms = (ns: number) => ns / 1e6;
  const window = {
    mainRun: ms(gatewayGaps.runNs.at(-1)! - gatewayGaps.runNs[0]!),
    mainWait: ms(gatewayGaps.waitNs.at(-1)! - gatewayGaps.waitNs[0]!),
    otherRun: gatewayGaps.otherThreadsRunMs,
    otherWait: gatewayGaps.otherThreadsWaitMs,
    machineBusy: gatewayGaps.machineBusyMs,
    wall: (gatewayGaps.wallUs.at(-1)! - gatewayGaps.wallUs[0]!) / 1000,
  };
  return { window, serverShare: (100 * serverPart) / all, server: splitSpans(serverSpans, gatewayGaps), transit: splitSpans(transitSpans, clientGaps) };
}

async function startProfiler(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return session;
}

/** Stops the profiler, writes its profile to `file`, and returns it. */
async function saveProfile(session: Session, file: string): Promise<Profile> {
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  mkdirSync(values.profile!, { recursive: true });
  writeFileSync(file, JSON.stringify(profile));
  return profile as Profile;
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Samples every 32 KiB allocated; forgets those a scavenge freed, keeps those a mark-compact did (they survived scavenges first). */
async function startSurvivorSampling(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 32 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: values.allocations });
  return session;
}

/** Stops the sampling, writes its profile to `file`, and returns the sampled bytes by site: the innermost three frames with their file and line. */
async function saveSurvivors(session: Session, file: string): Promise<Map<string, number>> {
  // Under --expose-gc, a last scavenge first: otherwise what was allocated since the window's last one counts as surviving.
  (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: HeapNode } };
  session.disconnect();
  mkdirSync(values.survivors!, { recursive: true });
  writeFileSync(file, JSON.stringify(profile));
  const bySite = new Map<string, number>();
  const frame = (node: HeapNode) => `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').at(-1)}:${node.callFrame.lineNumber + 1}`;
  const walk = (node: HeapNode, stack: string[]) => {
    const here = [frame(node), ...stack].slice(0, 3);
    if (node.selfSize > 0) bySite.set(here.join(' < '), (bySite.get(here.join(' < ')) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, []);
  return bySite;
}

/** The gateway's loop gaps this long or longer are the stalls whose CPU the profile splits by stage. */
const STALL_MS = 20;

/** The profile's samples inside the gateway's loop gaps of STALL_MS or more, µs by stage. */
function stallsByStage(profile: Profile, gaps: Gaps): Map<string, number> {
  // The profile's clock is the monotonic one process.hrtime reads; the gaps are wall-clock µs.
  const wallMinusMonotonic = (performance.timeOrigin + performance.now()) * 1000 - Number(process.hrtime.bigint() / 1000n);
  const stalls: Array<[number, number]> = [];
  for (let i = 1; i < gaps.wallUs.length; i++) {
    if (gaps.wallUs[i]! - gaps.wallUs[i - 1]! >= STALL_MS * 1000) stalls.push([gaps.wallUs[i - 1]!, gaps.wallUs[i]!]);
  }
  return splitByStage(profile, STAGES, (at) => stalls.some(([from, to]) => at + wallMinusMonotonic > from && at + wallMinusMonotonic <= to));
}

/** The gateway's relay: started per case, fed frames[from, from + count) at `rate`. */
interface Upstream {
  start(): Promise<string>;
  connected(): Promise<void>;
  push(from: number, count: number, rate: number): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

/** A FakeRelay in this (the gateway's) process. */
function relayInProcess(frames: Array<{ seq: number; bytes: Uint8Array }>): Upstream {
  let relay: FakeRelay | undefined;
  return {
    start: async () => (relay = await FakeRelay.start()).url,
    connected: () => relay!.waitForConnections(1),
    push: (from, count, rate) => paced(count, rate, (i) => relay!.push(frames[from + i]!)),
    stop: async () => relay?.stop(),
    close: async () => {},
  };
}

/** A FakeRelay in a child process (bench/replay-live-relay.ts), making the same frames. */
async function relayInChild(count: number): Promise<Upstream> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./replay-live-relay.ts', import.meta.url)), [String(count)], { execArgv: ['--import', 'tsx'] });
  const next = async (type: string): Promise<any> => {
    for (;;) {
      const [message] = await once(child, 'message');
      if ((message as { type: string }).type === type) return message;
    }
  };
  const ask = (message: object, answer: string) => {
    const answered = next(answer);
    child.send(message);
    return answered;
  };
  await next('ready');
  return {
    start: async () => (await ask({ type: 'start' }, 'started')).url,
    connected: () => ask({ type: 'connected' }, 'connected'),
    push: (from, count, rate) => ask({ type: 'push', from, count, rate }, 'pushed'),
    stop: () => ask({ type: 'stop' }, 'stopped'),
    close: async () => {
      child.disconnect();
      await once(child, 'exit');
    },
  };
}

/** Sets every thread of process `pid` to nice `value` (Linux applies setpriority to one thread: the main one, by the process id). */
function reniceProcess(pid: number, value: number): void {
  for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), value);
}

function progress(text: string): void {
  process.stderr.write(`replay-live: ${text}\n`);
}

async function runCase(which: Case, buffer: string, relay: Upstream, frameCount: number, run: number): Promise<Sample> {
  const dir = tempDir('contrail-replay-live-');
  const dataDir = join(dir.path, 'data');
  cpSync(buffer, dataDir, { recursive: true });
  const relayUrl = await relay.start();
  const gateway = await startTestGateway(
    relayUrl,
    dataDir,
    { transport: 'uws', replayWorkers: which.replayWorkers, hotCacheBytes: Number(values['hot-log-mib']) * MB, maxSubscribers: 1_000, maxConnectionsPerIp: 1_000 },
    // Replaying clients fall far behind the tip by design: never dropped, never pinged out. Replay
    // workers at nice 19, as contrail runs them (the test harness leaves them at the process's).
    { hub: { slowWindowMs: 3_600_000, pingIntervalMs: 3_600_000 }, lowerReplayWorkerPriority: true },
  );
  await relay.connected();
  await gateway.server.replayPool?.ready();
  const url = `ws://127.0.0.1:${gateway.port}/subscribe`;
  const live = await Clients.open(Array(LIVE_CLIENTS).fill(url), { latency: true, raw: values['live-clients'] === 'raw' });
  // A quarter of them compressed: their zstd frames are made per event as they replay.
  const replayUrls = Array.from({ length: which.replays }, (_, i) => `${url}?cursor=0${i % 4 === 0 ? '&compress=true' : ''}`);
  const replaying = which.replays > 0 ? await Clients.open(replayUrls, { countOnly: true }) : undefined;
  if (replaying && REPLAY_CLIENTS_NICE > 0) reniceProcess(replaying.pid, REPLAY_CLIENTS_NICE);
  // The warm-up's frames, live as the window's; the replays, opened before it, are under way when the window starts.
  const warmupFrames = RATE * WARMUP_SECONDS;
  await relay.push(0, warmupFrames, RATE);
  await new Promise((resolve) => setTimeout(resolve, 100));
  // The server's part of each live event's latency: its publish to every live socket is done when
  // this listener runs (the hub's, registered first, has sent it).
  const publishedAt = new Map<number, number>();
  let watching = false;
  gateway.store.onCommitted((entries) => {
    if (!watching) return;
    const now = wallClockMicros();
    for (const entry of entries) publishedAt.set(entry.timeUs, now);
  });
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  const gcPauses: number[] = [];
  const scavenges: number[] = [];
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcPauses.push(entry.duration);
      if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges.push(entry.duration);
    }
  });
  replaying?.reset();
  live.reset({ gaps: values.tail });
  const gatewayGaps = values.tail ? new GapRecorder() : undefined;
  watching = true;
  loopDelay.enable();
  gc.observe({ entryTypes: ['gc'] });
  const profiler = values.profile ? await startProfiler() : undefined;
  const survivorSampler = values.survivors ? await startSurvivorSampling() : undefined;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await relay.push(warmupFrames, frameCount - warmupFrames, RATE);
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const profile = profiler ? await saveProfile(profiler, join(values.profile!, `${which.key}-${run + 1}.cpuprofile`)) : undefined;
  const stages = profile ? splitByStage(profile, STAGES) : undefined;
  const survivors = survivorSampler ? await saveSurvivors(survivorSampler, join(values.survivors!, `${which.key}-${run + 1}.heapprofile`)) : undefined;
  loopDelay.disable();
  gc.disconnect();
  const replayed = (await replaying?.received()) ?? 0;
  const bufferReplayed = ((await replaying?.receivedSinceOpen()) ?? []).reduce((sum, received) => sum + Math.min(received, EVENTS), 0);
  const liveStats = await live.stats();
  const replayStats = await replaying?.stats();
  // Let the last live frames arrive.
  await new Promise((resolve) => setTimeout(resolve, 500));
  watching = false;
  const { samples, timeUs } = await live.latencySamples();
  const gatewayTimeline = gatewayGaps?.stop();
  const tail = gatewayTimeline ? splitTail(samples, timeUs, publishedAt, gatewayTimeline, await live.gaps()) : undefined;
  const stalls = gatewayTimeline && profile ? stallsByStage(profile, gatewayTimeline) : undefined;
  const server: number[] = [];
  const transit: number[] = [];
  samples.forEach((latency, i) => {
    const published = publishedAt.get(timeUs[i]!);
    if (published === undefined) return;
    server.push(published - timeUs[i]!);
    transit.push(latency - (published - timeUs[i]!));
  });
  await live.close();
  await replaying?.close();
  await gateway.stop();
  await relay.stop();
  dir.remove();
  if (samples.length < (frameCount - warmupFrames) * LIVE_CLIENTS * 0.9) throw new Error(`${which.name}: only ${samples.length} latency samples`);
  const cpuPercent = (micros: number) => (micros / (elapsedMs * 1000)) * 100;
  return {
    ...(stages ? { stages } : {}),
    ...(tail ? { tail } : {}),
    ...(stalls ? { stalls } : {}),
    ...(survivors ? { survivors } : {}),
    p50: percentile(samples, 50) / 1000,
    p99: percentile(samples, 99) / 1000,
    max: percentile(samples, 100) / 1000,
    replayEventsPerSecond: replayed / (elapsedMs / 1000),
    replayedShare: which.replays > 0 ? (100 * bufferReplayed) / (which.replays * EVENTS) : 0,
    serverP50: percentile(server, 50) / 1000,
    serverP99: percentile(server, 99) / 1000,
    transitP50: percentile(transit, 50) / 1000,
    transitP99: percentile(transit, 99) / 1000,
    loopP99: loopDelay.percentile(99) / 1e6,
    loopMax: loopDelay.max / 1e6,
    gcTotal: gcPauses.reduce((sum, ms) => sum + ms, 0),
    gcMax: Math.max(0, ...gcPauses),
    scavenges: scavenges.length,
    scavengeMedian: scavenges.length > 0 ? median(scavenges) : 0,
    cpuServer: cpuPercent(cpu.user + cpu.system),
    cpuLive: cpuPercent(liveStats.cpuMicros),
    cpuReplay: replayStats ? cpuPercent(replayStats.cpuMicros) : 0,
    liveLoopP99: liveStats.loopDelayP99Ms,
  };
}

const bufferDir = await replayBuffer(EVENTS, RATE, values.buffer, progress);
const frameCount = RATE * (WARMUP_SECONDS + SECONDS);
progress(`making ${frameCount.toLocaleString('en-US')} upstream frames (the relay: ${values.relay})`);
const relay = values.relay === 'child' ? await relayInChild(frameCount) : relayInProcess(relayFrames(frameCount));
const results = new Map<string, Sample[]>(CASES.map((c) => [c.name, []]));
for (let run = 0; run < RUNS; run++) {
  // Alternating order, so no case always runs on the warmest (or most loaded) machine.
  for (const which of run % 2 === 0 ? CASES : [...CASES].reverse()) {
    progress(`run ${run + 1}/${RUNS}: ${which.name}`);
    results.get(which.name)!.push(await runCase(which, bufferDir.path, relay, frameCount, run));
  }
}
await relay.close();
bufferDir.remove();

const rows: Row[] = CASES.map((which) => {
  const samples = results.get(which.name)!;
  const of = (pick: (s: Sample) => number) => median(samples.map(pick));
  return {
    case: which.name,
    'live p50 ms': of((s) => s.p50).toFixed(1),
    'live p99 ms': of((s) => s.p99).toFixed(1),
    'live max ms': of((s) => s.max).toFixed(1),
    'replayed events/s (all replays)': which.replays > 0 ? Math.round(of((s) => s.replayEventsPerSecond)) : '',
    'buffer replayed by the end %': which.replays > 0 ? samples.map((s) => s.replayedShare.toFixed(0)).join(' / ') : '',
    'p99 per run': samples.map((s) => s.p99.toFixed(1)).join(' / '),
  };
});
const parts: Row[] = CASES.map((which) => {
  const samples = results.get(which.name)!;
  const of = (pick: (s: Sample) => number, digits = 1) => median(samples.map(pick)).toFixed(digits);
  return {
    case: which.name,
    'server p50/p99 ms': `${of((s) => s.serverP50)} / ${of((s) => s.serverP99)}`,
    'transit p50/p99 ms': `${of((s) => s.transitP50)} / ${of((s) => s.transitP99)}`,
    'loop delay p99/max ms': `${of((s) => s.loopP99)} / ${of((s) => s.loopMax)}`,
    'GC total/max ms': `${of((s) => s.gcTotal, 0)} / ${of((s) => s.gcMax)}`,
    'scavenges: count / median ms': `${of((s) => s.scavenges, 0)} / ${of((s) => s.scavengeMedian)}`,
    'CPU % gateway / live / replay clients': `${of((s) => s.cpuServer, 0)} / ${of((s) => s.cpuLive, 0)} / ${of((s) => s.cpuReplay, 0)}`,
    'live clients loop p99 ms': of((s) => s.liveLoopP99),
  };
});
printTable(
  `live latency at ${RATE.toLocaleString('en-US')} frames/s to ${LIVE_CLIENTS} live clients (${values['live-clients']}) while ${REPLAYS} clients (nice ${REPLAY_CLIENTS_NICE}) replay a ${EVENTS.toLocaleString('en-US')}-event buffer from its oldest event; medians of ${RUNS} runs of ${SECONDS} s`,
  rows,
);
printTable(
  'where it goes (medians): server = time_us → published to every live socket; transit = published → arrival at the client; the gateway process\'s event loop and GC; CPU as % of one core',
  parts,
);
/** The stages that took the most, as 'stage ms, …'. */
function topStages(micros: Map<string, number>): string {
  return [...micros.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([stage, us]) => `${stage} ${(us / 1000).toFixed(0)}`)
    .join(', ');
}

if (values.tail) {
  const ms = (value: number) => value.toFixed(0);
  const split = (spent: Spent & { span: number }) =>
    `${ms(spent.span)}: ${ms(spent.scavenge)} / ${ms(spent.markCompact + spent.otherGc)} / ${ms(spent.run)} / ${ms(spent.waitCore)} / ${ms(spent.asleep)}`;
  const tailRows: Row[] = CASES.flatMap((which) =>
    results.get(which.name)!.map((sample, run) => ({
      case: `${which.key} ${run + 1}`,
      'live p99 ms': sample.p99.toFixed(1),
      'window ms: wall; gateway main thread running / waiting; its other threads running / waiting; machine busy (all processes)': ((w) =>
        `${ms(w.wall)}; ${ms(w.mainRun)} / ${ms(w.mainWait)}; ${ms(w.otherRun)} / ${ms(w.otherWait)}; ${ms(w.machineBusy)}`)(sample.tail!.window),
      'server share of tail %': sample.tail!.serverShare.toFixed(0),
      'gateway, server spans ms: all: scavenge / mark-compact and incremental marking / running / waiting for a core / asleep': split(sample.tail!.server),
      'longest gap ms': sample.tail!.server.longestGap.toFixed(0),
      'live clients, transit spans ms: all: scavenge / mark-compact and incremental marking / running / waiting for a core / asleep': split(sample.tail!.transit),
      'client longest gap ms': sample.tail!.transit.longestGap.toFixed(0),
      ...(sample.stalls ? { [`gateway CPU in its loop gaps ≥ ${STALL_MS} ms, ms by stage`]: topStages(sample.stalls) } : {}),
    })),
  );
  printTable(
    "the live tail (samples ≥ p99) per run: their spans merged into one timeline and split by what the gateway's main thread (server spans) and the live clients' main thread (transit spans) did, from /proc/thread-self/schedstat at 1 ms ticks and GC entries",
    tailRows,
  );
}
if (values.survivors) {
  for (const which of CASES) {
    results.get(which.name)!.forEach((sample, run) => {
      const total = [...sample.survivors!.values()].reduce((sum, bytes) => sum + bytes, 0);
      const rows: Row[] = [...sample.survivors!.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([site, bytes]) => ({ 'allocation site (innermost frames)': site, MB: (bytes / MB).toFixed(1), '%': ((100 * bytes) / total).toFixed(1) }));
      printTable(`${which.key} ${run + 1}: what survived the gateway's scavenges in the window (${(total / MB).toFixed(1)} MB sampled), by allocation site`, rows);
    });
  }
}
if (values.profile) {
  const split: Row[] = [...STAGES.map(([stage]) => stage), 'other'].map((stage) => {
    const row: Row = { 'main thread: stage': stage };
    for (const which of CASES) {
      const samples = results.get(which.name)!;
      const all = (s: Sample) => [...s.stages!.values()].reduce((sum, us) => sum + us, 0);
      const total = samples.reduce((sum, s) => sum + all(s), 0);
      // A case whose profile took no samples has no split to show.
      row[which.key] = total === 0 ? '–' : `${((100 * samples.reduce((sum, s) => sum + (s.stages!.get(stage) ?? 0), 0)) / total).toFixed(1)} %`;
    }
    return row;
  });
  printTable(`the gateway's main thread in the profiled windows: % of its wall time by stage, all ${RUNS} runs (profiles in ${values.profile})`, split);
}
