/**
 * bench/cluster: what the cluster mode costs and gives, beside the single process in the same run.
 * Every contrail here is a real `contrail serve` child process; NATS is Debian's nats-server on
 * 127.0.0.1, one server (R1) or a three-server cluster (R3). Frames are made before anything is
 * timed and kept between runs (bench/frames.ts: about 1 ms a frame, so making them on the fly
 * capped every figure at its pace), and the same frames feed every topology.
 *
 *  - ingest: a catch-up. The nodes read one frame, stop, and the relay is filled with a backlog
 *    (--backlog frames, 200,000 by default); restarted, the (leader) node resumes from its cursor
 *    and the relay sends the backlog as fast as the socket takes it. Events/s until every node
 *    holds the backlog: in a cluster that is relay → leader → stream → every node's buffer; and,
 *    apart, until the leader holds it (its publish rate: a follower that lags shows as the
 *    difference). Each is given sustained — over the window after every node holds the first
 *    40,000 frames' events (the warm-up: JIT, the young generation's growth, first seals, the
 *    consumer's start) — and, in brackets, for the whole catch-up from the relay's connection.
 *    Beside it, from /proc, events per CPU second of the leader (what one free core would
 *    sustain, whatever else the machine runs) and the CPU per 1,000 events of every process in the window,
 *    together and one by one (leader, follower, nats-servers, and this process, which is the
 *    relay); what the stream stored per event and how many events a message carried; and, as the
 *    ceiling, the same frames through the ingest path inside this process.
 *  - latency: a steady 2,000 frames/s; a client of the leader and one of the follower measure
 *    arrival − time_us (time_us is taken when the leader reads the frame), beside a client of the
 *    single process. The first seconds warm every process up (JIT, first block seals) and are
 *    not counted: the figures are the steady state.
 *  - fan-out: 1,000 clients on one serving node, then 500 on each of two, during bursts (the two
 *    setups take turns, --runs times each).
 *  - failover: kill -9 of the leader; how long a client of another node waits for the first
 *    event read by the new leader.
 *
 * `npx tsx bench/cluster.ts [ingest] [latency] [fanout] [failover] [--runs N] [--backlog N] [--hops] [--nats-nice N] [--nats-gogc N]`
 * runs only the named sections, each N times (3 by default; fewer while exploring). `--nats-nice`
 * and `--nats-gogc` run every nats-server at that niceness (nice -n) and Go GOGC, to measure what
 * a deployment sharing cores with contrail could set. `--hops` has every node of the
 * latency runs time each batch's hops (src/cluster/hop-timing.ts) and adds, per topology and node,
 * where the measured window's events spent their time until they were in that node's buffer
 * (medians over the runs of each hop's p50 and p99 over events), and the node's collections.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ContrailProcess } from '../test/support/contrail-process.ts';
import { exitOnStopSignals } from '../test/support/exit-on-signals.ts';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { tempDir } from '../test/support/gateway.ts';
import { NatsCluster, natsServerMissing, type NatsLaunch } from '../test/support/nats-cluster.ts';
import { stats, Subscription, waitUntil } from '../test/support/subscribe-client.ts';
import type { SyntheticFrame } from '../test/support/synthetic.ts';
import { Clients, paced, percentile } from './fanout.ts';
import { preparedFrames } from './frames.ts';
import { ingestIntoFreshBuffer } from './ingest-path.ts';
import type { HopFile, HopRecord } from '../src/cluster/hop-timing.ts';
import { median, printTable, type Row } from './table.ts';

const SEED = 21;
/** The frames every section uses; the ingest section's warm-up is their events. */
const FRAMES = 40_000;
/** The ingest section's backlog: long enough that the warm-up is a small part of it. */
const BACKLOG_FRAMES = 200_000;
const LATENCY_RATE = 2_000;
const LATENCY_SECONDS = 5;
const LATENCY_WARMUP_SECONDS = 2;
const FANOUT_CLIENTS = 1_000;
const FANOUT_FRAMES = 300;
const FANOUT_BURSTS = 3;
const RUNS = 3;
const KILLS = 3;

interface Topology {
  name: string;
  /** 0: the single process, without --nats. */
  natsServers: number;
}

const TOPOLOGIES: Topology[] = [
  { name: 'single process', natsServers: 0 },
  { name: 'cluster, NATS R1', natsServers: 1 },
  { name: 'cluster, NATS R3', natsServers: 3 },
];

/** Every setup's directories not removed yet: a run that fails or is stopped by a signal removes them as it exits (the data dirs hold up to a few GB). */
const setupDirs = new Set<{ remove(): void }>();
process.once('exit', () => {
  for (const dir of setupDirs) dir.remove();
});

/** A relay, NATS (or none) and `nodes` contrail processes against them. */
class Setup {
  /** Every frame pushed to the relay so far. */
  readonly pushed: SyntheticFrame[] = [];
  readonly #dirs: Array<{ remove(): void }> = [];
  /** Each node's data dir, so a stopped node restarts on its own buffer. */
  readonly dataDirs = new Map<ContrailProcess, string>();

  private constructor(
    readonly relay: FakeRelay,
    readonly nats: NatsCluster | undefined,
    readonly nodes: ContrailProcess[],
    readonly leaseMs: number,
    /** Where each node writes its hop timings (hop-timing.ts), if it should. */
    readonly hopsDir?: string,
  ) {}

  static async start(topology: Topology, nodeCount: number, natsLaunch: NatsLaunch, leaseMs = 5_000, timeHops = false): Promise<Setup> {
    const relay = await FakeRelay.start();
    const nats = topology.natsServers > 0 ? await NatsCluster.start(topology.natsServers, { launch: natsLaunch }) : undefined;
    const hopsDir = timeHops ? tempDir('contrail-bench-hops-') : undefined;
    const setup = new Setup(relay, nats, [], leaseMs, hopsDir?.path);
    if (hopsDir) setup.#keep(hopsDir);
    for (let i = 0; i < (nats ? nodeCount : 1); i++) setup.launch(i);
    for (const node of setup.nodes) await node.waitServing(60_000);
    await relay.waitForConnections(1, 60_000);
    return setup;
  }

  launch(i: number, dataDir?: string): ContrailProcess {
    const dir = dataDir ?? this.#newDir();
    const cluster = this.nats
      ? ['--nats', this.nats.urls.join(','), '--nats-replicas', String(this.nats.servers.length), '--nats-lease', `${this.leaseMs}ms`, '--node-id', `node${i}`]
      : [];
    const hops = this.hopsDir ? ['--nats-hop-timing', this.hopsFile(i)] : [];
    const node = ContrailProcess.serve(['--upstream', this.relay.url, '--data-dir', dir, '--max-connections-per-ip', '5000', ...cluster, ...hops]);
    this.dataDirs.set(node, dir);
    this.nodes[i] = node;
    return node;
  }

  hopsFile(i: number): string {
    return join(this.hopsDir!, `node${i}.json`);
  }

  push(frames: SyntheticFrame[]): void {
    for (const frame of frames) {
      this.relay.push({ seq: frame.seq, bytes: frame.bytes });
      this.pushed.push(frame);
    }
  }

  get lastSeq(): number {
    return this.pushed.at(-1)?.seq ?? 0;
  }

  /** Resolves once `node` holds every frame pushed (polled every 50 ms, not to load what is measured). */
  async settled(node: ContrailProcess, timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const upstreamSeq = async () => {
      try {
        return (await stats(node.port)).upstreamCursor?.seq ?? 0;
      } catch (err) {
        throw new Error(`node stopped answering (${(err as Error).message})\n${node.tail(40)}`);
      }
    };
    while ((await upstreamSeq()) < this.lastSeq) {
      if (Date.now() > deadline) throw new Error(`node did not reach upstream seq ${this.lastSeq}\n${node.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async allSettled(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.settled(node)));
  }

  /** The index of the node that leads now (the single process leads itself). */
  async leader(): Promise<number> {
    if (!this.nats) return 0;
    let index = -1;
    await waitUntil(
      () => {
        index = this.nodes.findIndex((node) => {
          const terms = node.logs.filter((record) => /this node is the ingest leader|lost the ingest lease|stops leading/.test(record.msg));
          return terms.at(-1)?.msg === 'this node is the ingest leader';
        });
        return index >= 0;
      },
      'a leader',
      60_000,
    );
    return index;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
    await this.relay.stop();
    await this.nats?.stop();
    for (const dir of this.#dirs) {
      dir.remove();
      setupDirs.delete(dir);
    }
  }

  #keep(dir: { remove(): void }): void {
    this.#dirs.push(dir);
    setupDirs.add(dir);
  }

  #newDir(): string {
    const dir = tempDir('contrail-bench-cluster-');
    this.#keep(dir);
    return dir.path;
  }
}

/** Linux's USER_HZ: /proc counts CPU time in these ticks. */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSeconds(pid: number): number {
  // After "pid (comm) " the state is field 3; utime and stime are fields 14 and 15.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

interface CatchUp {
  /** Events per wall-clock second until every node holds the backlog: the whole catch-up, from a cold start. */
  rate: number;
  /** Events per wall-clock second until the leader holds it (it commits its own batches when the stream acknowledges them). */
  leaderRate: number;
  /** Events per CPU second of the leader (the busiest contrail process) over the whole catch-up: what one free core would sustain. */
  perLeaderCpuSecond: number;
  /** The same three over the sustained window: from when every node holds the warm-up's events until the end. */
  sustained: { rate: number; leaderRate: number; perLeaderCpuSecond: number };
  /** Events/s until every node holds the first warm-up's worth of events, then each next such span (the last may be shorter): how the rate moves along the backlog. */
  spans: number[];
  /** CPU ms per 1,000 events in the sustained window, every contrail and NATS process together (not the relay). */
  cpuMsPerThousand: number;
  /** The same, process by process: the leader, the other node(s), the NATS server(s), and this process (the relay, polling /stats). */
  cpuMsPerThousandBy: { leader: number; followers: number; nats: number; relay: number };
  /** What the stream took per event: bytes stored and messages (a batch is one message unless split). */
  streamBytesPerEvent?: number;
  eventsPerMessage?: number;
}

/** A look at every node during a catch-up: when, each node's events since the start, every process's CPU seconds so far. */
interface Sample {
  at: number;
  events: number[];
  done: boolean[];
  cpu: number[];
  relayCpu: number;
}

/**
 * A catch-up on the backlog (see the header): from the relay's connection until every node holds
 * it, whole and over the sustained window, which starts at the first look (every 50 ms) at which
 * every node holds at least `warmupEvents` of it.
 */
async function catchUp(topology: Topology, frames: SyntheticFrame[], warmupEvents: number, natsLaunch: NatsLaunch): Promise<CatchUp> {
  const setup = await Setup.start(topology, 2, natsLaunch);
  try {
    setup.push(frames.slice(0, 1));
    await setup.allSettled();
    const before = (await stats(setup.nodes[0]!.port)).eventCount;
    const streamBefore = await streamState(setup);
    await Promise.all(setup.nodes.map((node) => node.stop()));
    setup.push(frames.slice(1));
    const connections = setup.relay.cursors.length;
    const stopped = [...setup.nodes];
    stopped.forEach((node, i) => setup.launch(i, setup.dataDirs.get(node)));
    while (setup.relay.cursors.length === connections) await new Promise((resolve) => setTimeout(resolve, 2));
    const natsPids = (setup.nats?.servers ?? []).map((server) => server.process!.pid!);
    const pids = [...setup.nodes.map((node) => node.child.pid!), ...natsPids];
    const relayCpu = () => {
      const used = process.cpuUsage();
      return (used.user + used.system) / 1e6;
    };
    const first: Sample = { at: performance.now(), events: setup.nodes.map(() => 0), done: setup.nodes.map(() => false), cpu: pids.map(cpuSeconds), relayCpu: relayCpu() };
    await Promise.all(setup.nodes.map((node) => node.waitServing(60_000)));
    const leaderIndex = await setup.leader();
    const samples = [first];
    const deadline = Date.now() + 600_000;
    while (!samples.at(-1)!.done.every(Boolean)) {
      if (Date.now() > deadline) throw new Error(`the nodes did not reach upstream seq ${setup.lastSeq}\n${setup.nodes.map((node) => node.tail(20)).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const nodeStats = await Promise.all(
        setup.nodes.map((node) =>
          stats(node.port).catch((err: Error) => {
            throw new Error(`node stopped answering (${err.message})\n${node.tail(40)}`);
          }),
        ),
      );
      samples.push({
        at: performance.now(),
        events: nodeStats.map((nodeStat) => nodeStat.eventCount - before),
        done: nodeStats.map((nodeStat) => (nodeStat.upstreamCursor?.seq ?? 0) >= setup.lastSeq),
        cpu: pids.map(cpuSeconds),
        relayCpu: relayCpu(),
      });
    }
    const last = samples.at(-1)!;
    const events = last.events[leaderIndex]!;
    const leaderDone = samples.find((sample) => sample.done[leaderIndex])!;
    const warm = samples.find((sample) => Math.min(...sample.events) >= warmupEvents);
    if (!warm || warm === last) throw new Error(`the backlog (${events} events) ends before the sustained window: give more frames than the warm-up`);
    const nodeCount = setup.nodes.length;
    const leaderCpu = (from: Sample, to: Sample) => to.cpu[leaderIndex]! - from.cpu[leaderIndex]!;
    const windowEvents = events - Math.min(...warm.events);
    const perThousand = (cpuSeconds: number) => (cpuSeconds * 1000 * 1000) / windowEvents;
    const cpuBetween = (from: number, to: number) => last.cpu.slice(from, to).reduce((sum, used, i) => sum + used - warm.cpu[from + i]!, 0);
    const nodesCpu = cpuBetween(0, nodeCount);
    const streamAfter = await streamState(setup);
    const spans: number[] = [];
    for (let from = first; from !== last; ) {
      const spanEnd = Math.min(...from.events) + warmupEvents;
      const to = samples.find((sample) => Math.min(...sample.events) >= spanEnd) ?? last;
      spans.push((Math.min(...to.events) - Math.min(...from.events)) / ((to.at - from.at) / 1000));
      from = to;
    }
    return {
      spans,
      rate: events / ((last.at - first.at) / 1000),
      leaderRate: events / ((leaderDone.at - first.at) / 1000),
      perLeaderCpuSecond: events / leaderCpu(first, last),
      sustained: {
        rate: windowEvents / ((last.at - warm.at) / 1000),
        leaderRate: (events - warm.events[leaderIndex]!) / ((leaderDone.at - warm.at) / 1000),
        perLeaderCpuSecond: (events - warm.events[leaderIndex]!) / leaderCpu(warm, last),
      },
      cpuMsPerThousand: perThousand(nodesCpu + cpuBetween(nodeCount, pids.length)),
      cpuMsPerThousandBy: {
        leader: perThousand(leaderCpu(warm, last)),
        followers: perThousand(nodesCpu - leaderCpu(warm, last)),
        nats: perThousand(cpuBetween(nodeCount, pids.length)),
        relay: perThousand(last.relayCpu - warm.relayCpu),
      },
      ...(streamBefore &&
        streamAfter && {
          streamBytesPerEvent: (streamAfter.bytes - streamBefore.bytes) / events,
          eventsPerMessage: events / (streamAfter.messages - streamBefore.messages),
        }),
    };
  } finally {
    await setup.stop();
  }
}

/** The event stream's stored bytes and messages (undefined for the single process). */
async function streamState(setup: Setup): Promise<{ bytes: number; messages: number } | undefined> {
  if (!setup.nats) return undefined;
  const nc = await connect({ servers: setup.nats.urls });
  try {
    const { state } = await (await jetstreamManager(nc)).streams.info('contrail-events');
    return { bytes: state.bytes, messages: state.messages };
  } finally {
    await nc.close();
  }
}

/**
 * The ceiling for every process above: the same frames through the gateway's own ingest path
 * (ingest-path.ts) into an EventStore without fsync, as `contrail serve` runs it — in this
 * process, with no socket, no server and no stream. Events per CPU second of this process,
 * measured beside the others in the same run.
 */
async function inProcessIngest(frames: SyntheticFrame[]): Promise<number> {
  const run = await ingestIntoFreshBuffer(frames.map((frame) => frame.bytes), { hotLogBytes: 256 * 1024 * 1024 });
  return run.events / run.cpuSeconds;
}

interface Latencies {
  leader: number[];
  follower?: number[];
  /** With --hops (a cluster): each node's hop timings of the measured window's batches. */
  hops?: { leader: HopSummary; follower: HopSummary };
}

/** arrival − time_us in µs for every event a client of the leader and of the follower (or of the single process) receives at a steady rate. */
async function latencies(topology: Topology, frames: SyntheticFrame[], timeHops: boolean, natsLaunch: NatsLaunch): Promise<Latencies> {
  const setup = await Setup.start(topology, 2, natsLaunch, undefined, timeHops && topology.natsServers > 0);
  try {
    const leaderIndex = await setup.leader();
    const subscriptions = await Promise.all(setup.nodes.map((node) => Subscription.open(node.port)));
    const arrivals = subscriptions.map(() => [] as number[]);
    /** Events with an earlier time_us were read during the warm-up. */
    let measuredFromUs = Infinity;
    subscriptions.forEach((subscription, i) =>
      subscription.ws.on('message', (data: Buffer) => {
        const timeUs = Number(/"time_us":(\d+)/.exec(data.toString('latin1', 0, 120))?.[1]);
        if (timeUs >= measuredFromUs) arrivals[i]!.push((performance.timeOrigin + performance.now()) * 1000 - timeUs);
      }),
    );
    const warmup = LATENCY_RATE * LATENCY_WARMUP_SECONDS;
    await paced(warmup, LATENCY_RATE, (i) => setup.push([frames[i]!]));
    measuredFromUs = (performance.timeOrigin + performance.now()) * 1000;
    await paced(LATENCY_RATE * LATENCY_SECONDS, LATENCY_RATE, (i) => setup.push([frames[warmup + i]!]));
    await setup.allSettled();
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const subscription of subscriptions) await subscription.close();
    const result: Latencies = { leader: arrivals[leaderIndex]!, follower: arrivals.find((_, i) => i !== leaderIndex) };
    if (setup.hopsDir) {
      // Each node writes its timings as it exits.
      await Promise.all(setup.nodes.map((node) => node.stop()));
      const [leader, follower] = [leaderIndex, leaderIndex === 0 ? 1 : 0].map((i) => JSON.parse(readFileSync(setup.hopsFile(i), 'utf8')) as HopFile);
      const storedUs = new Map(follower!.batches.map((record) => [record.firstUs, record.role === 'follower' ? record.storedUs : NaN]));
      // The leader's batches the follower read too (all but the term's first), with when NATS stored them.
      leader!.batches = leader!.batches.flatMap((record) => (storedUs.has(record.firstUs) ? [{ ...record, storedUs: storedUs.get(record.firstUs) } as HopRecord] : []));
      result.hops = { leader: summariseHops(leader!, measuredFromUs), follower: summariseHops(follower!, measuredFromUs) };
    }
    return result;
  } finally {
    await setup.stop();
  }
}

/** The hops of a node's batches, in order: each from the one before it (the first from the batch's first time_us), µs. */
const HOPS: Record<HopRecord['role'], Array<[string, (record: any) => number | undefined]>> = {
  leader: [
    ['read → cut', (r) => r.cutUs - r.firstUs],
    ['encode', (r) => r.encodedUs - r.cutUs],
    // When nats-server stored it: the follower's copy of the batch carries the message's timestamp.
    ['publish → stored in NATS', (r) => r.storedUs - r.encodedUs],
    ['stored → ack', (r) => r.ackedUs - r.storedUs],
    ['ack → committed', (r) => r.committedUs - r.ackedUs],
    ['read → committed', (r) => r.committedUs - r.firstUs],
  ],
  follower: [
    ['read → stored in NATS', (r) => r.storedUs - r.firstUs],
    ['stored → arrived', (r) => r.arrivedUs - r.storedUs],
    ['decode', (r) => r.decodedUs - r.arrivedUs],
    ['decoded → committed', (r) => r.committedUs - r.decodedUs],
    ['read → committed', (r) => r.committedUs - r.firstUs],
  ],
};

interface HopSummary {
  role: HopRecord['role'];
  /** Per hop: p50 and p99 over events (each batch counted once per event: an event waits for its batch), and the hop's mean over the slowest 1% of events by read → committed. */
  hops: Array<{ hop: string; p50: number; p99: number; slowest: number }>;
  /** Collections during the window: how many, their total and longest pause, µs. */
  gc: { count: number; totalUs: number; maxUs: number };
  loopDelayP99Us: number;
}

function summariseHops(file: HopFile, fromUs: number): HopSummary {
  const batches = file.batches.filter((record) => record.firstUs >= fromUs && record.committedUs !== undefined);
  const role = batches[0]?.role ?? 'follower';
  const hops = HOPS[role];
  // One row per event: the first event of a batch waited longest, so every event of it is charged its first's wait.
  const rows = batches.flatMap((record) => Array<number[]>(record.events).fill(hops.map(([, hop]) => hop(record) ?? NaN)));
  const total = hops.length - 1;
  const slowest = [...rows].sort((a, b) => b[total]! - a[total]!).slice(0, Math.max(1, Math.ceil(rows.length / 100)));
  const gc = file.gc.filter((entry) => entry.startUs >= fromUs);
  return {
    role,
    hops: hops.map(([hop], i) => ({
      hop,
      p50: percentile(rows.map((row) => row[i]!), 50),
      p99: percentile(rows.map((row) => row[i]!), 99),
      slowest: slowest.reduce((sum, row) => sum + row[i]!, 0) / slowest.length,
    })),
    gc: { count: gc.length, totalUs: gc.reduce((sum, entry) => sum + entry.durationUs, 0), maxUs: Math.max(0, ...gc.map((entry) => entry.durationUs)) },
    loopDelayP99Us: file.loopDelayUs.p99,
  };
}

/** Frames/s delivered to FANOUT_CLIENTS clients spread over `servingNodes` nodes, median of the bursts. */
async function fanoutRate(servingNodes: number, frames: SyntheticFrame[], natsLaunch: NatsLaunch): Promise<number> {
  const setup = await Setup.start({ name: 'R1', natsServers: 1 }, servingNodes, natsLaunch);
  try {
    const urls = Array.from({ length: FANOUT_CLIENTS }, (_, i) => `ws://127.0.0.1:${setup.nodes[i % servingNodes]!.port}/subscribe`);
    const clients = await Clients.open(urls);
    const rates: number[] = [];
    for (let burst = 0; burst < FANOUT_BURSTS; burst++) {
      const slice = frames.slice(burst * FANOUT_FRAMES, (burst + 1) * FANOUT_FRAMES);
      const events = slice.reduce((sum, frame) => sum + frame.events, 0);
      rates.push((await clients.measure(events * FANOUT_CLIENTS, () => setup.push(slice))).rate);
      await setup.allSettled();
    }
    await clients.close();
    return median(rates);
  } finally {
    await setup.stop();
  }
}

/** ms from kill -9 of the leader until a client of another node receives an event the new leader read. */
async function failoverGaps(leaseMs: number, frames: SyntheticFrame[], natsLaunch: NatsLaunch): Promise<number[]> {
  const setup = await Setup.start({ name: 'R3', natsServers: 3 }, 3, natsLaunch, leaseMs);
  const gaps: number[] = [];
  let flowing = true;
  const flow = (async () => {
    // About 400 frames/s: the prepared frames last well past the kills.
    for (let next = 0; flowing && next < frames.length; next++) {
      setup.push([frames[next]!]);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  try {
    for (let kill = 0; kill < KILLS; kill++) {
      const leaderIndex = await setup.leader();
      const watcher = await Subscription.open(setup.nodes[(leaderIndex + 1) % setup.nodes.length]!.port);
      await watcher.waitForCount(10, 'live events before the kill');
      const killedAtUs = (performance.timeOrigin + performance.now()) * 1000;
      const leader = setup.nodes[leaderIndex]!;
      leader.child.kill('SIGKILL');
      await leader.exit;
      await waitUntil(() => watcher.events.some((event) => event.time_us > killedAtUs), 'an event from the new leader', 60_000);
      gaps.push(performance.timeOrigin + performance.now() - killedAtUs / 1000);
      await watcher.close();
      await setup.launch(leaderIndex, setup.dataDirs.get(leader)).waitServing(60_000);
    }
  } finally {
    flowing = false;
    await flow;
    await setup.stop();
  }
  return gaps;
}

/** `count` measurements of every topology, the topologies taking turns so that a change in the machine's load touches all alike. */
async function takingTurns<T>(section: string, count: number, measure: (topology: Topology) => Promise<T>): Promise<Map<Topology, T[]>> {
  const runs = new Map(TOPOLOGIES.map((topology) => [topology, [] as T[]]));
  for (let i = 0; i < count; i++) {
    for (const [topology, results] of runs) {
      progress(`${section}, ${topology.name}, run ${i + 1}`);
      results.push(await measure(topology));
    }
  }
  return runs;
}

function progress(text: string): void {
  process.stderr.write(`cluster: ${text}…\n`);
}

const ms = (micros: number) => (micros / 1000).toFixed(2);

const SECTIONS = ['ingest', 'latency', 'fanout', 'failover'];

/** Runs the named sections (all by default: the whole run takes many minutes); `natsLaunch` is how nats-server runs (NatsLaunch). */
export async function run(sections = new Set(SECTIONS), runCount = RUNS, timeHops = false, backlogFrames = BACKLOG_FRAMES, natsLaunch: NatsLaunch = {}): Promise<Row[]> {
  const missing = natsServerMissing();
  if (missing) return [{ bench: 'cluster', case: `skipped: ${missing}` }];
  const frames = preparedFrames(FRAMES, { seed: SEED, accounts: 20_000 });
  const events = frames.reduce((sum, frame) => sum + frame.events, 0);
  const rows: Row[] = [];
  // Each row also goes to stderr as soon as it is measured: the whole run takes many minutes.
  // The machine's 1-minute load average when a row is done (its runs took a minute or more) says how contended it was.
  const add = (row: Row) => {
    const measured = { ...row, 'load avg': loadavg()[0]!.toFixed(1) };
    process.stderr.write(`cluster: ${JSON.stringify(measured)}\n`);
    rows.push(measured);
  };

  if (sections.has('ingest')) {
    const backlog = preparedFrames(backlogFrames, { seed: SEED, accounts: 20_000 });
    const backlogEvents = backlog.reduce((sum, frame) => sum + frame.events, 0);
    const inProcess: number[] = [];
    const runs = await takingTurns('ingest', runCount, async (topology) => {
      if (topology === TOPOLOGIES[0]) inProcess.push(await inProcessIngest(backlog));
      const run = await catchUp(topology, backlog, events, natsLaunch);
      progress(`events/s in spans of ${events.toLocaleString('en-US')} events: ${run.spans.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')}`);
      return run;
    });
    const medianFor = (topology: Topology, value: (run: CatchUp) => number) => median(runs.get(topology)!.map(value));
    const vsSingle = (topology: Topology, value: (run: CatchUp) => number) => `${(medianFor(topology, value) / medianFor(TOPOLOGIES[0]!, value)).toFixed(2)}×`;
    for (const [topology, results] of runs) {
      const medianOf = (value: (run: CatchUp) => number | undefined) => median(results.map(value).filter((v): v is number => v !== undefined));
      const clustered = topology.natsServers > 0;
      const whole = (run: CatchUp) => run.perLeaderCpuSecond;
      const sustained = (run: CatchUp) => run.sustained.perLeaderCpuSecond;
      add({
        bench: 'ingest',
        case: `${topology.name}: catch-up on ${backlogEvents.toLocaleString('en-US')} events until every node holds them; sustained: after the first ${events.toLocaleString('en-US')}`,
        'events/s sustained (whole)': `${Math.round(medianOf((run) => run.sustained.rate)).toLocaleString('en-US')} (${Math.round(medianOf((run) => run.rate)).toLocaleString('en-US')})`,
        'events/s until the leader holds them, sustained (whole)': clustered
          ? `${Math.round(medianOf((run) => run.sustained.leaderRate)).toLocaleString('en-US')} (${Math.round(medianOf((run) => run.leaderRate)).toLocaleString('en-US')})`
          : '',
        'events per CPU-s of the leader, sustained (whole)': `${Math.round(medianFor(topology, sustained)).toLocaleString('en-US')} (${Math.round(medianFor(topology, whole)).toLocaleString('en-US')})`,
        'vs single, sustained (whole)': `${vsSingle(topology, sustained)} (${vsSingle(topology, whole)})`,
        'CPU ms per 1k events, all processes, sustained': Math.round(medianOf((run) => run.cpuMsPerThousand)),
        'of it leader / follower / NATS': clustered
          ? [(run: CatchUp) => run.cpuMsPerThousandBy.leader, (run: CatchUp) => run.cpuMsPerThousandBy.followers, (run: CatchUp) => run.cpuMsPerThousandBy.nats]
              .map((part) => Math.round(medianOf(part)))
              .join(' / ')
          : '',
        'relay CPU ms per 1k': Math.round(medianOf((run) => run.cpuMsPerThousandBy.relay)),
        'stream bytes per event': clustered ? Math.round(medianOf((run) => run.streamBytesPerEvent)) : '',
        'events per message': clustered ? Math.round(medianOf((run) => run.eventsPerMessage)) : '',
      });
    }
    add({
      bench: 'ingest',
      case: `in-process ingest path (decode, events, Ingester, EventStore; no socket, server or stream) on the same ${backlogEvents.toLocaleString('en-US')} events, whole`,
      'events per CPU-s of the leader, sustained (whole)': `(${Math.round(median(inProcess)).toLocaleString('en-US')})`,
      'vs single, sustained (whole)': `(${(median(inProcess) / medianFor(TOPOLOGIES[0]!, (run) => run.perLeaderCpuSecond)).toFixed(2)}×)`,
    });
  }

  if (sections.has('latency')) {
    const runs = await takingTurns('latency', runCount, async (topology) => {
      const result = await latencies(topology, frames, timeHops, natsLaunch);
      const perRole = (['leader', 'follower'] as const).flatMap((role) => (result[role] ? [`${role} ${ms(percentile(result[role], 50))} / ${ms(percentile(result[role], 99))}`] : []));
      progress(`latency, ${topology.name}, p50 / p99 ms: ${perRole.join('; ')}`);
      if (result.hops) process.stderr.write(`cluster: hops ${topology.name} ${JSON.stringify(result.hops)}\n`);
      return result;
    });
    for (const [topology, results] of runs) {
      for (const role of ['leader', 'follower'] as const) {
        const perRun = results.map((result) => result[role]).filter((samples) => samples !== undefined);
        if (perRun.length === 0) continue;
        const where = topology.natsServers === 0 ? 'client of the process' : `client of the ${role}`;
        add({
          bench: 'latency',
          case: `${topology.name}, ${where}, ${LATENCY_RATE.toLocaleString('en-US')} frames/s`,
          'p50 ms': ms(median(perRun.map((samples) => percentile(samples, 50)))),
          'p99 ms': ms(median(perRun.map((samples) => percentile(samples, 99)))),
        });
      }
    }
    for (const [topology, results] of timeHops ? runs : []) {
      for (const role of ['leader', 'follower'] as const) {
        const summaries = results.map((result) => result.hops?.[role]).filter((summary) => summary !== undefined);
        if (summaries.length === 0) continue;
        for (const [i, { hop }] of summaries[0]!.hops.entries()) {
          const medianOf = (value: (summary: HopSummary) => number) => ms(median(summaries.map(value)));
          add({
            bench: 'hops',
            case: `${topology.name}, ${role}: ${hop}`,
            'p50 ms': medianOf((summary) => summary.hops[i]!.p50),
            'p99 ms': medianOf((summary) => summary.hops[i]!.p99),
            'slowest 1%, mean ms': medianOf((summary) => summary.hops[i]!.slowest),
          });
        }
        add({
          bench: 'hops',
          case: `${topology.name}, ${role}: collections in the window, event loop delay`,
          'GCs': median(summaries.map((summary) => summary.gc.count)),
          'GC total ms': ms(median(summaries.map((summary) => summary.gc.totalUs))),
          'GC max ms': ms(median(summaries.map((summary) => summary.gc.maxUs))),
          'loop delay p99 ms': ms(median(summaries.map((summary) => summary.loopDelayP99Us))),
        });
      }
    }
  }

  // One and two serving nodes take turns, so a change in the machine's load touches both alike.
  const fanout = new Map<number, number[]>([
    [1, []],
    [2, []],
  ]);
  for (let i = 0; i < (sections.has('fanout') ? runCount : 0); i++) {
    for (const [serving, rates] of fanout) {
      progress(`fan-out, ${serving} serving node(s), run ${i + 1}`);
      rates.push(await fanoutRate(serving, frames, natsLaunch));
    }
  }
  for (const [serving, rates] of sections.has('fanout') ? fanout : []) {
    add({
      bench: 'fanout',
      case: `cluster R1, ${FANOUT_CLIENTS.toLocaleString('en-US')} clients on ${serving} node(s)`,
      'frames/s': Math.round(median(rates)),
      'vs 1 node': `${(median(rates) / median(fanout.get(1)!)).toFixed(2)}×`,
    });
  }

  for (const leaseMs of sections.has('failover') ? [2_000, 5_000] : []) {
    progress(`failover, lease ${leaseMs} ms`);
    const gaps = await failoverGaps(leaseMs, frames, natsLaunch);
    add({ bench: 'failover', case: `kill -9 of the leader, lease ${leaseMs / 1000} s, R3 (${KILLS} kills)`, 'median ms': Math.round(median(gaps)), 'max ms': Math.round(Math.max(...gaps)) });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // Stopped by a signal, the run still ends every nats-server and contrail it started.
  exitOnStopSignals();
  const { values, positionals: named } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: String(RUNS) },
      hops: { type: 'boolean', default: false },
      backlog: { type: 'string', default: String(BACKLOG_FRAMES) },
      'nats-nice': { type: 'string' },
      'nats-gogc': { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs ${values.runs}: give a whole number of runs, 1 or more`);
  const backlog = Number(values.backlog);
  if (!Number.isInteger(backlog) || backlog <= FRAMES) throw new Error(`--backlog ${values.backlog}: give a whole number of frames above the warm-up's ${FRAMES}`);
  const natsLaunch: NatsLaunch = {};
  if (values['nats-nice'] !== undefined) {
    natsLaunch.nice = Number(values['nats-nice']);
    if (!Number.isInteger(natsLaunch.nice) || natsLaunch.nice < -20 || natsLaunch.nice > 19) throw new Error(`--nats-nice ${values['nats-nice']}: give a niceness from -20 to 19 (below 0 needs root)`);
  }
  if (values['nats-gogc'] !== undefined) {
    natsLaunch.gogc = Number(values['nats-gogc']);
    if (!Number.isInteger(natsLaunch.gogc) || natsLaunch.gogc < 1) throw new Error(`--nats-gogc ${values['nats-gogc']}: give a whole percentage, 1 or more (Go's GOGC)`);
  }
  const unknown = named.filter((section) => !SECTIONS.includes(section));
  if (unknown.length > 0) throw new Error(`unknown section ${unknown.join(', ')}: choose from ${SECTIONS.join(', ')}`);
  const launched = [natsLaunch.nice !== undefined && `nice ${natsLaunch.nice}`, natsLaunch.gogc !== undefined && `GOGC ${natsLaunch.gogc}`].filter(Boolean).join(', ');
  const title = `cluster: contrail processes on NATS JetStream${launched ? ` (nats-server at ${launched})` : ''} beside the single process, same run`;
  printTable(title, await run(named.length > 0 ? new Set(named) : undefined, runs, values.hops, backlog, natsLaunch));
}
