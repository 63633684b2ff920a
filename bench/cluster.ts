/**
 * bench/cluster: what the cluster mode costs and gives, beside the single process in the same run.
 * Every contrail here is a real `contrail serve` child process; NATS is Debian's nats-server on
 * 127.0.0.1, one server (R1) or a three-server cluster (R3). Frames are made before anything is
 * timed (the synthetic firehose makes a few hundred a second here: making them on the fly capped
 * every figure at its pace), and the same frames feed every topology.
 *
 *  - ingest: a catch-up. The nodes read one frame, stop, and the relay is filled with a backlog;
 *    restarted, the (leader) node resumes from its cursor and the relay sends the backlog as fast
 *    as the socket takes it. Events/s from the relay's connection until every node holds the
 *    backlog: in a cluster that is relay → leader → stream → every node's buffer; and, apart, until
 *    the leader holds it (its publish rate: a follower that lags shows as the difference). Beside
 *    it, from /proc, events per CPU second of the busiest process (the leader: what one free core
 *    would sustain, whatever else the machine runs) and the CPU per 1,000 events of every process,
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
 * `npx tsx bench/cluster.ts [ingest] [latency] [fanout] [failover] [--runs N]` runs only the named
 * sections, each N times (3 by default; fewer while exploring).
 */
import { readFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ContrailProcess } from '../test/support/contrail-process.ts';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { tempDir } from '../test/support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../test/support/nats-cluster.ts';
import { stats, Subscription, waitUntil } from '../test/support/subscribe-client.ts';
import type { SyntheticFrame } from '../test/support/synthetic.ts';
import { Clients, paced, percentile } from './fanout.ts';
import { preparedFrames } from './frames.ts';
import { ingestIntoFreshBuffer } from './ingest-path.ts';
import { median, printTable, type Row } from './table.ts';

const SEED = 21;
const INGEST_FRAMES = 40_000;
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
  ) {}

  static async start(topology: Topology, nodeCount: number, leaseMs = 5_000): Promise<Setup> {
    const relay = await FakeRelay.start();
    const nats = topology.natsServers > 0 ? await NatsCluster.start(topology.natsServers) : undefined;
    const setup = new Setup(relay, nats, [], leaseMs);
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
    const node = ContrailProcess.serve(['--upstream', this.relay.url, '--data-dir', dir, '--max-connections-per-ip', '5000', ...cluster]);
    this.dataDirs.set(node, dir);
    this.nodes[i] = node;
    return node;
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
    for (const dir of this.#dirs) dir.remove();
  }

  #newDir(): string {
    const dir = tempDir('contrail-bench-cluster-');
    this.#dirs.push(dir);
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
  /** Events per wall-clock second until every node holds the backlog. */
  rate: number;
  /** Events per wall-clock second until the leader holds it (it commits its own batches when the stream acknowledges them). */
  leaderRate: number;
  /** Events per CPU second of the busiest contrail process (the leader): what one core sustains, whatever else runs. */
  perBusiestCpuSecond: number;
  /** CPU ms per 1,000 events, every contrail and NATS process together (not the relay). */
  cpuMsPerThousand: number;
  /** The same, process by process: the leader, the other node(s), the NATS server(s), and this process (the relay, polling /stats). */
  cpuMsPerThousandBy: { leader: number; followers: number; nats: number; relay: number };
  /** What the stream took per event: bytes stored and messages (a batch is one message unless split). */
  streamBytesPerEvent?: number;
  eventsPerMessage?: number;
}

/** A catch-up on the backlog (see the header): from the relay's connection until every node holds it. */
async function catchUp(topology: Topology, frames: SyntheticFrame[]): Promise<CatchUp> {
  const setup = await Setup.start(topology, 2);
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
    const started = performance.now();
    const relayCpuAtStart = process.cpuUsage();
    const natsPids = (setup.nats?.servers ?? []).map((server) => server.process!.pid!);
    const cpuAtStart = [...setup.nodes.map((node) => cpuSeconds(node.child.pid!)), ...natsPids.map(cpuSeconds)];
    await Promise.all(setup.nodes.map((node) => node.waitServing(60_000)));
    const leaderIndex = await setup.leader();
    const settledAt = await Promise.all(setup.nodes.map((node) => setup.settled(node).then(() => performance.now())));
    const seconds = (performance.now() - started) / 1000;
    const cpu = [...setup.nodes.map((node) => cpuSeconds(node.child.pid!)), ...natsPids.map(cpuSeconds)].map((used, i) => used - cpuAtStart[i]!);
    const relayCpu = process.cpuUsage(relayCpuAtStart);
    const events = (await stats(setup.nodes[0]!.port)).eventCount - before;
    const perThousand = (cpuSeconds: number) => (cpuSeconds * 1000 * 1000) / events;
    const nodeCpu = cpu.slice(0, setup.nodes.length);
    const streamAfter = await streamState(setup);
    return {
      rate: events / seconds,
      leaderRate: events / ((settledAt[leaderIndex]! - started) / 1000),
      perBusiestCpuSecond: events / Math.max(...nodeCpu),
      cpuMsPerThousand: perThousand(cpu.reduce((sum, used) => sum + used, 0)),
      cpuMsPerThousandBy: {
        leader: perThousand(nodeCpu[leaderIndex]!),
        followers: perThousand(nodeCpu.reduce((sum, used) => sum + used, 0) - nodeCpu[leaderIndex]!),
        nats: perThousand(cpu.slice(setup.nodes.length).reduce((sum, used) => sum + used, 0)),
        relay: perThousand((relayCpu.user + relayCpu.system) / 1e6),
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

/** arrival − time_us in µs for every event a client of the leader and of the follower (or of the single process) receives at a steady rate. */
async function latencies(topology: Topology, frames: SyntheticFrame[]): Promise<{ leader: number[]; follower?: number[] }> {
  const setup = await Setup.start(topology, 2);
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
    return { leader: arrivals[leaderIndex]!, follower: arrivals.find((_, i) => i !== leaderIndex) };
  } finally {
    await setup.stop();
  }
}

/** Frames/s delivered to FANOUT_CLIENTS clients spread over `servingNodes` nodes, median of the bursts. */
async function fanoutRate(servingNodes: number, frames: SyntheticFrame[]): Promise<number> {
  const setup = await Setup.start({ name: 'R1', natsServers: 1 }, servingNodes);
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
async function failoverGaps(leaseMs: number, frames: SyntheticFrame[]): Promise<number[]> {
  const setup = await Setup.start({ name: 'R3', natsServers: 3 }, 3, leaseMs);
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

/** Runs the named sections (all by default: the whole run takes many minutes). */
export async function run(sections = new Set(SECTIONS), runCount = RUNS): Promise<Row[]> {
  const missing = natsServerMissing();
  if (missing) return [{ bench: 'cluster', case: `skipped: ${missing}` }];
  const frames = preparedFrames(INGEST_FRAMES, { seed: SEED, accounts: 20_000 });
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
    const inProcess: number[] = [];
    const runs = await takingTurns('ingest', runCount, async (topology) => {
      if (topology === TOPOLOGIES[0]) inProcess.push(await inProcessIngest(frames));
      return catchUp(topology, frames);
    });
    const perLeaderCpuSecond = (topology: Topology) => median(runs.get(topology)!.map((run) => run.perBusiestCpuSecond));
    for (const [topology, results] of runs) {
      const medianOf = (value: (run: CatchUp) => number | undefined) => median(results.map(value).filter((v): v is number => v !== undefined));
      const clustered = topology.natsServers > 0;
      add({
        bench: 'ingest',
        case: `${topology.name}: catch-up on ${events.toLocaleString('en-US')} events, until every node holds them`,
        'events/s': Math.round(medianOf((run) => run.rate)),
        'events/s, leader': clustered ? Math.round(medianOf((run) => run.leaderRate)) : '',
        'events per CPU-s of the leader': Math.round(perLeaderCpuSecond(topology)),
        'vs single': `${(perLeaderCpuSecond(topology) / perLeaderCpuSecond(TOPOLOGIES[0]!)).toFixed(2)}×`,
        'CPU ms per 1k events, all processes': Math.round(medianOf((run) => run.cpuMsPerThousand)),
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
      case: `in-process ingest path (decode, events, Ingester, EventStore; no socket, server or stream) on the same ${events.toLocaleString('en-US')} events`,
      'events per CPU-s of the leader': Math.round(median(inProcess)),
      'vs single': `${(median(inProcess) / perLeaderCpuSecond(TOPOLOGIES[0]!)).toFixed(2)}×`,
    });
  }

  if (sections.has('latency')) {
    const runs = await takingTurns('latency', runCount, (topology) => latencies(topology, frames));
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
  }

  // One and two serving nodes take turns, so a change in the machine's load touches both alike.
  const fanout = new Map<number, number[]>([
    [1, []],
    [2, []],
  ]);
  for (let i = 0; i < (sections.has('fanout') ? runCount : 0); i++) {
    for (const [serving, rates] of fanout) {
      progress(`fan-out, ${serving} serving node(s), run ${i + 1}`);
      rates.push(await fanoutRate(serving, frames));
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
    const gaps = await failoverGaps(leaseMs, frames);
    add({ bench: 'failover', case: `kill -9 of the leader, lease ${leaseMs / 1000} s, R3 (${KILLS} kills)`, 'median ms': Math.round(median(gaps)), 'max ms': Math.round(Math.max(...gaps)) });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals: named } = parseArgs({ allowPositionals: true, options: { runs: { type: 'string', default: String(RUNS) } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs ${values.runs}: give a whole number of runs, 1 or more`);
  const unknown = named.filter((section) => !SECTIONS.includes(section));
  if (unknown.length > 0) throw new Error(`unknown section ${unknown.join(', ')}: choose from ${SECTIONS.join(', ')}`);
  printTable('cluster: contrail processes on NATS JetStream beside the single process, same run', await run(named.length > 0 ? new Set(named) : undefined, runs));
}
