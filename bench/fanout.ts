/**
 * bench/fanout: how fast contrail's server delivers to many local clients, beside a plain
 * `ws` broadcast server doing the same job in the same run, plus the zstd dictionary's ratio
 * on held-out events.
 *
 *  - throughput: a burst of events committed to the store (contrail) or broadcast (ws) and
 *    delivered to 1,000 connected clients; frames/s measured by the clients (a child process),
 *    as plain JSON, zstd, and permessage-deflate (clients offer it; contrail grants it to all).
 *    Beside it, the server process's CPU per frame (all its threads: zlib runs off the main
 *    thread in ws) as % of a core at 1,000 frames/s, and bytes per event on the wire.
 *  - latency: a steady 2,000 events/s through the whole gateway (fake relay → decode → LMDB
 *    commit → live index → socket) to 1,000 clients, 20 of them unfiltered and the rest
 *    wanting a few DIDs each, as real consumers mostly do; latency = arrival − time_us. The ws
 *    baseline checks every client's filter for every event and stamps time_us when it sends,
 *    so its figure leaves out decoding and the LMDB commit that contrail's includes.
 *  - ratio: total JSON bytes / total zstd bytes over held-out real events, one frame per event.
 *
 *   npx tsx bench/fanout.ts [--cases json,zstd,deflate,latency,ratio]   (all by default)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { Compressor } from 'zstd-napi';
import { DEFAULT_DICTIONARY } from '../src/config.ts';
import { CursorClock } from '../src/events/clock.ts';
import type { Entry } from '../src/events/entry.ts';
import { DEFAULT_REPLAY_LEVEL, EventCompressor } from '../src/server/compression.ts';
import { startServer } from '../src/server/server.ts';
import { EventStore } from '../src/store/event-store.ts';
import { eventsOf } from '../test/support/events.ts';
import { FakeRelay } from '../test/support/fake-relay.ts';
import { V1_DICTIONARY, v1DictionarySkipReason } from '../test/support/fixtures.ts';
import { startTestGateway, tempDir } from '../test/support/gateway.ts';
import { SyntheticFirehose } from '../test/support/synthetic.ts';
import { heldOutEvents } from './heldout.ts';
import type { Gaps } from './loop-gaps.ts';
import { median, printTable, type Row } from './table.ts';

const CLIENTS = 1_000;
const BURST = 300;
const RUNS = 3;
const LATENCY_RATE = 2_000;
const LATENCY_SECONDS = 5;

type Compression = 'json' | 'zstd' | 'deflate';

interface Burst {
  rate: number;
  cpuMicrosPerFrame: number;
  bytesPerFrame: number;
}

/** The median run by rate, with its CPU and bytes. */
function medianBurst(bursts: Burst[]): Burst {
  const rate = median(bursts.map((b) => b.rate));
  const found = bursts.find((b) => b.rate === rate);
  if (!found) throw new Error('no bursts measured');
  return found;
}

/** Fresh entries for a run: new objects and new JSON buffers, so nothing compressed earlier is reused. */
function freshCopies(entries: Entry[], clock?: CursorClock): Entry[] {
  return entries.map((entry) => ({ ...entry, json: Buffer.from(entry.json), ...(clock ? { timeUs: clock.next() } : {}) }));
}

function syntheticEntries(count: number, seed = 3): Entry[] {
  const firehose = new SyntheticFirehose({ seed });
  const clock = new CursorClock(Date.now() * 1000);
  const entries: Entry[] = [];
  while (entries.length < count) entries.push(...eventsOf(firehose.next().bytes, clock));
  return entries.slice(0, count);
}

export class Clients {
  readonly #child: ChildProcess;
  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async open(urls: string[], options: { latency?: boolean; deflate?: boolean; countOnly?: boolean; raw?: boolean } = {}): Promise<Clients> {
    const clients = await Clients.start();
    await clients.connect(urls, options);
    return clients;
  }

  /** The clients' process, started and loaded (it answered), with no connection yet: a benchmark that times from the connect leaves its start-up out. */
  static async start(): Promise<Clients> {
    const clients = new Clients(fork(fileURLToPath(new URL('./fanout-clients.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'] }));
    await clients.received();
    return clients;
  }

  async connect(urls: string[], options: { latency?: boolean; deflate?: boolean; countOnly?: boolean; raw?: boolean } = {}): Promise<void> {
    this.#child.send({ type: 'connect', urls, ...options });
    await this.#next('connected');
  }

  /** The clients' process id (to set its OS priority). */
  get pid(): number {
    return this.#child.pid!;
  }

  /** Frames/s the clients saw, this process's CPU µs per frame, and wire bytes per frame. */
  async measure(expected: number, publish: () => Promise<void> | void): Promise<Burst> {
    this.#child.send({ type: 'reset', expected });
    const done = this.#next('done');
    const cpu = process.cpuUsage();
    await publish();
    const { frames, seconds, wireBytes } = await done;
    const used = process.cpuUsage(cpu);
    return { rate: frames / seconds, cpuMicrosPerFrame: (used.user + used.system) / frames, bytesPerFrame: wireBytes / frames };
  }

  /** Publishes without waiting for a count (latency runs), then collects the samples. */
  async latencyOf(publish: () => Promise<void>): Promise<number[]> {
    this.#child.send({ type: 'reset', expected: Infinity });
    await publish();
    // Let the last frames arrive.
    await new Promise((resolve) => setTimeout(resolve, 500));
    return this.#latencies();
  }

  /** Frames received since the last reset. */
  async received(): Promise<number> {
    this.#child.send({ type: 'count' });
    return (await this.#next('count')).frames;
  }

  /** countOnly clients: the messages each one received since its connection opened, resets aside. */
  async receivedSinceOpen(): Promise<number[]> {
    this.#child.send({ type: 'count' });
    return (await this.#next('count')).sinceOpen;
  }

  /** Starts counting (and sampling latency) afresh, expecting no particular count; with `gaps`, also records the client process's main thread (bench/loop-gaps.ts). */
  reset(options: { gaps?: boolean } = {}): void {
    this.#child.send({ type: 'reset', expected: Infinity, gaps: options.gaps ?? false });
  }

  /** What the client process's main thread did since a reset with `gaps`. */
  async gaps(): Promise<Gaps> {
    this.#child.send({ type: 'gaps' });
    return (await this.#next('gaps')).gaps;
  }

  /** The latency samples since the last reset, in µs. */
  latencies(): Promise<number[]> {
    return this.#latencies();
  }

  /** The latency samples since the last reset (µs), each with its event's time_us. */
  async latencySamples(): Promise<{ samples: number[]; timeUs: number[] }> {
    this.#child.send({ type: 'latency' });
    const { samples, timeUs } = await this.#next('latency');
    return { samples, timeUs };
  }

  /** The client process's CPU time and event-loop delay since the last reset. */
  async stats(): Promise<{ cpuMicros: number; loopDelayP99Ms: number; loopDelayMaxMs: number }> {
    this.#child.send({ type: 'stats' });
    const { cpuMicros, loopDelayP99Ms, loopDelayMaxMs } = await this.#next('stats');
    return { cpuMicros, loopDelayP99Ms, loopDelayMaxMs };
  }

  async #latencies(): Promise<number[]> {
    this.#child.send({ type: 'latency' });
    return (await this.#next('latency')).samples;
  }

  async close(): Promise<void> {
    this.#child.send({ type: 'stop' });
    await once(this.#child, 'exit');
  }

  async #next(type: string): Promise<any> {
    for (;;) {
      const [message] = await once(this.#child, 'message');
      if ((message as { type: string }).type === type) return message;
    }
  }
}

/** contrail's server over a real store: events enter by EventStore.commit, as ingest does. */
async function contrailThroughput(entries: Entry[], compression: Compression, transport: 'uws' | 'ws'): Promise<Burst> {
  const dir = tempDir();
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 64 * 1024 * 1024 });
  const server = await startServer({
    store,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    host: '127.0.0.1',
    port: 0,
    transport,
    zstdDictionary: readFileSync(DEFAULT_DICTIONARY),
    zstdDictionaryPath: DEFAULT_DICTIONARY,
    zstdReplayLevel: DEFAULT_REPLAY_LEVEL,
    readiness: () => ({ ready: true, problems: [] }),
    maxSubscribers: CLIENTS + 10,
    maxConnectionsPerIp: CLIENTS + 10,
    maxDeflateSubscribers: CLIENTS + 10,
    // One client process reads 1,000 sockets; on a busy machine it may answer a ping after the
    // next one is due, and a dropped client would leave the burst's count short forever.
    hub: { pingIntervalMs: 3_600_000 },
  });
  const url = `ws://127.0.0.1:${server.port}/subscribe${compression === 'zstd' ? '?compress=true' : ''}`;
  const clients = await Clients.open(Array(CLIENTS).fill(url), { deflate: compression === 'deflate' });
  const clock = new CursorClock(Date.now() * 1000);
  const bursts: Burst[] = [];
  for (let run = 0; run < RUNS; run++) {
    // Fresh entries each run (new time_us, nothing compressed yet), committed in ingest-sized batches.
    const batch = freshCopies(entries, clock);
    bursts.push(
      await clients.measure(batch.length * CLIENTS, async () => {
        for (let i = 0; i < batch.length; i += 50) await store.commit({ entries: batch.slice(i, i + 50), revs: new Map() });
      }),
    );
  }
  await clients.close();
  await server.close();
  await store.close();
  dir.remove();
  return medianBurst(bursts);
}

/**
 * The peer: `ws`'s WebSocketServer sending the same bytes (zstd made once per event) to every
 * client; for deflate, its own permessage-deflate (no context takeover, as contrail's), which
 * compresses per socket on libuv's thread pool.
 */
async function wsThroughput(entries: Entry[], compression: Compression): Promise<Burst> {
  const perMessageDeflate = compression === 'deflate' && { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 0 };
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate });
  await once(wss, 'listening');
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/subscribe`;
  const clients = await Clients.open(Array(CLIENTS).fill(url), { deflate: compression === 'deflate' });
  const compressor = new EventCompressor(readFileSync(DEFAULT_DICTIONARY));
  const bursts: Burst[] = [];
  for (let run = 0; run < RUNS; run++) {
    const batch = freshCopies(entries);
    bursts.push(
      await clients.measure(batch.length * CLIENTS, () => {
        for (const entry of batch) {
          const bytes = compression === 'zstd' ? compressor.compressed(entry) : entry.json;
          for (const client of wss.clients) client.send(bytes, { binary: compression === 'zstd' });
        }
      }),
    );
  }
  await clients.close();
  await new Promise((resolve) => wss.close(resolve));
  return medianBurst(bursts);
}

function latencyUrls(base: string, dids: string[]): string[] {
  return Array.from({ length: CLIENTS }, (_, i) =>
    i < 20 ? base : `${base}?${dids.slice((i * 3) % dids.length, ((i * 3) % dids.length) + 3).map((d) => `wantedDids=${d}`).join('&')}`,
  );
}

async function contrailLatency(): Promise<number[]> {
  const relay = await FakeRelay.start();
  const dir = tempDir();
  const gateway = await startTestGateway(relay.url, dir.path, { transport: 'uws', maxConnectionsPerIp: CLIENTS + 10 });
  await relay.waitForConnections(1);
  const firehose = new SyntheticFirehose({ seed: 5, accounts: 20_000 });
  const frames = firehose.frames(LATENCY_RATE * LATENCY_SECONDS);
  const dids = Array.from({ length: 3_000 }, (_, i) => `did:plc:${'bench'.padEnd(19, 'x')}${String(i).padStart(5, '0')}`);
  const clients = await Clients.open(latencyUrls(`ws://127.0.0.1:${gateway.port}/subscribe`, dids), { latency: true });
  const samples = await clients.latencyOf(() => paced(frames.length, LATENCY_RATE, (i) => relay.push({ seq: frames[i]!.seq, bytes: frames[i]!.bytes })));
  await clients.close();
  await gateway.stop();
  await relay.stop();
  dir.remove();
  return samples;
}

async function wsLatency(entries: Entry[]): Promise<number[]> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const filters = new Map<WebSocket, Set<string> | null>();
  wss.on('connection', (socket, request) => {
    const dids = new URL(request.url ?? '/', 'http://x').searchParams.getAll('wantedDids');
    filters.set(socket, dids.length ? new Set(dids) : null);
  });
  const dids = Array.from({ length: 3_000 }, (_, i) => `did:plc:${'bench'.padEnd(19, 'x')}${String(i).padStart(5, '0')}`);
  const clients = await Clients.open(latencyUrls(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/subscribe`, dids), { latency: true });
  const clock = new CursorClock();
  const samples = await clients.latencyOf(() =>
    paced(LATENCY_RATE * LATENCY_SECONDS, LATENCY_RATE, (i) => {
      const entry = entries[i % entries.length]!; // entries is not empty: it was read from the frames
      const json = Buffer.from(entry.json.toString().replace(/"time_us":\d+/, `"time_us":${clock.next()}`));
      for (const [socket, wanted] of filters) if (!wanted || wanted.has(entry.did)) socket.send(json, { binary: false });
    }),
  );
  await clients.close();
  await new Promise((resolve) => wss.close(resolve));
  return samples;
}

/** Calls send(i) for i < count at `rate` per second, in 5 ms ticks. */
export async function paced(count: number, rate: number, send: (i: number) => void): Promise<void> {
  const started = performance.now();
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate));
    for (; sent < due; sent++) send(sent);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`fanout: ${text}…\n`);
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function ratioRows(): Row[] {
  const missing = v1DictionarySkipReason();
  if (missing) return [{ bench: 'ratio', case: missing }];
  const events = heldOutEvents();
  const raw = events.reduce((sum, e) => sum + e.json.byteLength, 0);
  const ours = new EventCompressor(readFileSync(DEFAULT_DICTIONARY));
  const v1 = new EventCompressor(readFileSync(V1_DICTIONARY));
  const plain = new Compressor();
  plain.setParameters({ compressionLevel: 3 });
  const candidates: Array<[string, (json: Buffer) => Uint8Array]> = [
    ['contrail dictionary (dictionaries/contrail-v1.zstd-dict)', (json) => ours.compressed({ json } as Entry)],
    ["Jetstream v1's dictionary", (json) => v1.compressed({ json } as Entry)],
    ['no dictionary', (json) => plain.compress(json)],
  ];
  return candidates.map(([name, compress]) => {
    const compressed = events.reduce((sum, e) => sum + compress(e.json).byteLength, 0);
    return {
      bench: 'ratio',
      case: `${name}, ${events.length} held-out events`,
      ratio: `${(raw / compressed).toFixed(2)}×`,
      'bytes/event': Math.round(compressed / events.length),
    };
  });
}

const CASES = ['json', 'zstd', 'deflate', 'latency', 'ratio'] as const;
type Case = (typeof CASES)[number];

export async function run(cases: readonly Case[] = CASES): Promise<Row[]> {
  const entries = syntheticEntries(BURST);
  const rows: Row[] = [];
  const burstRow = (name: string, burst: Burst, peer: Burst): Row => ({
    bench: 'fanout',
    case: `${name}, ${CLIENTS} clients`,
    'frames/s': Math.round(burst.rate),
    'vs ws': `${(burst.rate / peer.rate).toFixed(2)}×`,
    // CPU µs per frame × 1,000 frames/s = µs per second; / 10⁴ = % of one core.
    'CPU %core per 1k frames/s': ((burst.cpuMicrosPerFrame * 1000) / 1e4).toFixed(3),
    'bytes/event': Math.round(burst.bytesPerFrame),
  });
  for (const compression of (['json', 'zstd', 'deflate'] as const).filter((which) => cases.includes(which))) {
    progress(`throughput, ${compression}: contrail`);
    const ours = await contrailThroughput(entries, compression, 'uws');
    const oursWs = compression === 'deflate' ? await contrailThroughput(entries, compression, 'ws') : undefined;
    progress(`throughput, ${compression}: ws`);
    const peer = await wsThroughput(entries, compression);
    rows.push(burstRow(`contrail (uWS), ${compression}`, ours, peer));
    if (oursWs) rows.push(burstRow(`contrail (ws transport: deflated once, shared), ${compression}`, oursWs, peer));
    rows.push(burstRow(`ws broadcast, ${compression}`, peer, peer));
  }
  if (cases.includes('latency')) rows.push(...(await latencyRows()));
  return cases.includes('ratio') ? [...rows, ...ratioRows()] : rows;
}

async function latencyRows(): Promise<Row[]> {
  progress('latency: contrail');
  const contrailSamples = await contrailLatency();
  progress('latency: ws');
  const wsSamples = await wsLatency(syntheticEntries(2_000, 9));
  return (
    [
      ['contrail latency, ingest→client', contrailSamples],
      ['ws broadcast latency, send→client', wsSamples],
    ] as const
  ).map(([name, samples]) => ({
    bench: 'latency',
    case: `${name}, ${LATENCY_RATE} ev/s, ${CLIENTS} clients`,
    frames: samples.length,
    'p50 ms': (percentile(samples, 50) / 1000).toFixed(2),
    'p99 ms': (percentile(samples, 99) / 1000).toFixed(2),
  }));
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { cases: { type: 'string', default: CASES.join(',') } } });
  const cases = values.cases.split(',');
  const unknown = cases.filter((which) => !(CASES as readonly string[]).includes(which));
  if (unknown.length > 0) throw new Error(`--cases: unknown ${unknown.join(', ')} (known: ${CASES.join(', ')})`);
  printTable(`fanout: median of ${RUNS} bursts of ${BURST} events; latency over ${LATENCY_SECONDS}s; ratio on held-out events`, await run(cases as Case[]));
}
