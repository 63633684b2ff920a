/**
 * bench/cluster: what the cluster mode costs and gives, beside the single process in the same run.
 * Every contrail here is a real `contrail serve` child process; NATS is Debian's nats-server on
 * 127.0.0.1, one server (R1) or a three-server cluster (R3).
 *
 *  - ingest: a backlog of synthetic frames pushed at once; events/s until every node holds them.
 *  - latency: a steady 2,000 events/s; a client on the leader and one on a follower measure
 *    arrival − time_us (time_us is taken when the leader reads the frame), beside a client of the
 *    single process.
 *  - fan-out: 1,000 clients on one serving node, then 500 on each of two, during a burst.
 *  - failover: kill -9 of the leader; how long a client of another node waits for the first
 *    event read by the new leader.
 */
import { ServeProcess } from '../test/support/serve-process.ts';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { tempDir } from '../test/support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../test/support/nats-cluster.ts';
import { stats, Subscription, waitUntil } from '../test/support/subscribe-client.ts';
import { SyntheticFirehose, type SyntheticFrame } from '../test/support/synthetic.ts';
import { Clients, paced, percentile } from './fanout.ts';
import { median, printTable, type Row } from './table.ts';

const INGEST_FRAMES = 20_000;
const LATENCY_RATE = 2_000;
const LATENCY_SECONDS = 5;
const FANOUT_CLIENTS = 1_000;
const FANOUT_FRAMES = 300;
const RUNS = 3;
const KILLS = 3;

type Topology = { name: string; natsServers: number } | { name: string; natsServers: 0 };

const TOPOLOGIES: Topology[] = [
  { name: 'single process', natsServers: 0 },
  { name: 'cluster, NATS R1', natsServers: 1 },
  { name: 'cluster, NATS R3', natsServers: 3 },
];

/** A relay, NATS (or none) and `nodes` contrail processes against them. */
class Setup {
  readonly frames: SyntheticFrame[] = [];
  readonly #firehose = new SyntheticFirehose({ seed: 21, accounts: 20_000 });
  readonly #dirs: Array<{ remove(): void }> = [];
  /** Each node's data dir, so a killed node restarts on its own buffer. */
  readonly dataDirs = new Map<ServeProcess, string>();

  private constructor(
    readonly relay: FakeRelay,
    readonly nats: NatsCluster | undefined,
    readonly nodes: ServeProcess[],
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

  launch(i: number, dataDir?: string): ServeProcess {
    const dir = dataDir ?? this.#newDir();
    const cluster = this.nats
      ? ['--nats', this.nats.urls.join(','), '--nats-replicas', String(this.nats.servers.length), '--nats-lease', `${this.leaseMs}ms`, '--node-id', `node${i}`]
      : [];
    const node = new ServeProcess(['--upstream', this.relay.url, '--data-dir', dir, '--max-connections-per-ip', '5000', ...cluster]);
    this.dataDirs.set(node, dir);
    this.nodes[i] = node;
    return node;
  }

  /** The next `count` frames of the stream, not pushed yet. */
  take(count: number): SyntheticFrame[] {
    return this.#firehose.frames(count);
  }

  push(count: number, frames = this.take(count)): void {
    for (const frame of frames) {
      this.relay.push({ seq: frame.seq, bytes: frame.bytes });
      this.frames.push(frame);
    }
  }

  get lastSeq(): number {
    return this.frames.at(-1)?.seq ?? 0;
  }

  async settled(node: ServeProcess, timeoutMs = 300_000): Promise<void> {
    await waitUntil(async () => ((await stats(node.port)).upstreamCursor?.seq ?? 0) >= this.lastSeq, `upstream seq ${this.lastSeq}`, timeoutMs);
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

async function ingestRate(topology: Topology): Promise<number> {
  const setup = await Setup.start(topology, 2);
  try {
    const started = performance.now();
    setup.push(INGEST_FRAMES);
    await Promise.all(setup.nodes.map((node) => setup.settled(node)));
    const seconds = (performance.now() - started) / 1000;
    return (await stats(setup.nodes[0]!.port)).eventCount / seconds;
  } finally {
    await setup.stop();
  }
}

/** arrival − time_us in µs for every event a client of each node receives at a steady rate. */
async function latencies(topology: Topology): Promise<number[][]> {
  const setup = await Setup.start(topology, 2);
  try {
    const subscriptions = await Promise.all(setup.nodes.map((node) => Subscription.open(node.port)));
    const arrivals = subscriptions.map(() => [] as number[]);
    subscriptions.forEach((subscription, i) =>
      subscription.ws.on('message', (data: Buffer) => {
        const timeUs = Number(/"time_us":(\d+)/.exec(data.toString('latin1', 0, 120))?.[1]);
        arrivals[i]!.push((performance.timeOrigin + performance.now()) * 1000 - timeUs);
      }),
    );
    const frames = LATENCY_RATE * LATENCY_SECONDS;
    await paced(frames, LATENCY_RATE, () => setup.push(1));
    await Promise.all(setup.nodes.map((node) => setup.settled(node)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const subscription of subscriptions) await subscription.close();
    return arrivals;
  } finally {
    await setup.stop();
  }
}

async function fanoutRate(topology: Topology, servingNodes: number): Promise<number> {
  const setup = await Setup.start(topology, servingNodes);
  try {
    const urls = Array.from({ length: FANOUT_CLIENTS }, (_, i) => `ws://127.0.0.1:${setup.nodes[i % servingNodes]!.port}/subscribe`);
    const clients = await Clients.open(urls);
    const rates: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const frames = setup.take(FANOUT_FRAMES);
      const events = frames.reduce((sum, frame) => sum + frame.events, 0);
      rates.push((await clients.measure(events * FANOUT_CLIENTS, () => setup.push(FANOUT_FRAMES, frames))).rate);
      await Promise.all(setup.nodes.map((node) => setup.settled(node)));
      await Promise.all(setup.nodes.map((node) => setup.settled(node)));
    }
    await clients.close();
    return median(rates);
  } finally {
    await setup.stop();
  }
}

/** ms from kill -9 of the leader until a client of another node receives an event the new leader read. */
async function failoverGaps(leaseMs: number): Promise<number[]> {
  const setup = await Setup.start({ name: 'R3', natsServers: 3 }, 3, leaseMs);
  const gaps: number[] = [];
  let flowing = true;
  const flow = (async () => {
    while (flowing) {
      setup.push(4);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  try {
    for (let kill = 0; kill < KILLS; kill++) {
      const leaderIndex = await currentLeader(setup);
      const watcherIndex = (leaderIndex + 1) % setup.nodes.length;
      const watcher = await Subscription.open(setup.nodes[watcherIndex]!.port);
      await watcher.waitForCount(10, 'live events before the kill');
      const killedAtUs = (performance.timeOrigin + performance.now()) * 1000;
      const leader = setup.nodes[leaderIndex]!;
      leader.signal('SIGKILL');
      await leader.exited;
      await waitUntil(() => watcher.events.some((event) => event.time_us > killedAtUs), 'an event from the new leader', 60_000);
      gaps.push(performance.timeOrigin + performance.now() - killedAtUs / 1000);
      await watcher.close();
      const restarted = setup.launch(leaderIndex, setup.dataDirs.get(leader));
      await restarted.waitServing(60_000);
    }
  } finally {
    flowing = false;
    await flow;
    await setup.stop();
  }
  return gaps;
}

async function currentLeader(setup: Setup): Promise<number> {
  let index = -1;
  await waitUntil(
    () => {
      index = setup.nodes.findIndex((node) => {
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

function progress(text: string): void {
  process.stderr.write(`cluster: ${text}…\n`);
}

export async function run(): Promise<Row[]> {
  const missing = natsServerMissing();
  if (missing) return [{ bench: 'cluster', case: `skipped: ${missing}` }];
  const rows: Row[] = [];
  // Each row also goes to stderr as soon as it is measured: the whole run takes minutes.
  const add = (row: Row) => {
    process.stderr.write(`cluster: ${JSON.stringify(row)}\n`);
    rows.push(row);
  };
  for (const topology of TOPOLOGIES) {
    progress(`ingest, ${topology.name}`);
    const rate = await ingestRate(topology);
    add({ bench: 'ingest', case: `${topology.name}: ${INGEST_FRAMES.toLocaleString('en-US')} frames at once`, 'events/s': Math.round(rate) });
  }
  for (const topology of TOPOLOGIES) {
    progress(`latency, ${topology.name}`);
    const samples = await latencies(topology);
    samples.forEach((values, i) => {
      const where = topology.natsServers === 0 ? 'client of the process' : i === 0 ? 'client of node 0' : 'client of node 1';
      add({
        bench: 'latency',
        case: `${topology.name}, ${where}, ${LATENCY_RATE} ev/s`,
        events: values.length,
        'p50 ms': (percentile(values, 50) / 1000).toFixed(2),
        'p99 ms': (percentile(values, 99) / 1000).toFixed(2),
      });
    });
  }
  for (const serving of [1, 2]) {
    progress(`fan-out, ${serving} serving node(s)`);
    const rate = await fanoutRate({ name: 'R1', natsServers: 1 }, serving);
    add({ bench: 'fanout', case: `cluster R1, ${FANOUT_CLIENTS} clients on ${serving} node(s)`, 'frames/s': Math.round(rate) });
  }
  for (const leaseMs of [2_000, 5_000]) {
    progress(`failover, lease ${leaseMs} ms`);
    const gaps = await failoverGaps(leaseMs);
    add({ bench: 'failover', case: `kill -9 of the leader, lease ${leaseMs / 1000} s, R3 (${KILLS} kills)`, 'median ms': Math.round(median(gaps)), 'max ms': Math.round(Math.max(...gaps)) });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable('cluster: contrail processes on NATS JetStream beside the single process, same run', await run());
}
