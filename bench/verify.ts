/**
 * bench/verify: what `--verify` costs per commit, beside ingest without it, in the same run.
 *
 * The corpus is real: repos written and signed by @atproto/repo (the PDS's own write path), each
 * starting with 300 records so the MST has the depth of a lived-in repo, then a mix of commits —
 * likes and posts created, posts edited and deleted, now and then three writes in one commit —
 * each framed as a PDS frames it, with its sync 1.1 proof (prevData, ops[].prev, the MST nodes).
 * K-256 signing goes through @atcute/crypto's OpenSSL-backed key so building the corpus is quick.
 *
 * Each mode runs the gateway's own path: decode and parse the frame, then (with --verify) the
 * Verifier with every key already in the identity cache (the steady state), its checks on this
 * thread or on worker threads, then event building. Peer: @atproto/sync's
 * parseCommitAuthenticated, the reference TypeScript verifier (signature and MST proof), over
 * the first PEER_FRAMES frames. Each row also gives the CPU time per commit over all threads
 * (process.cpuUsage), which a busy machine inflates far less than wall time, and the main
 * thread's part of it (the kernel's schedstat: with workers, what bounds the rate on two cores
 * is the busier of the main thread and the workers). Then the latency a
 * commit gets from the frame to its events when frames arrive at a moderate, steady rate
 * (p50/p99; "added" is the p50 beside --verify off's in the same run). The load average is
 * printed with the table: read the numbers with it.
 *
 *   flock /work/bench.lock npx tsx bench/verify.ts     (or: npm run bench -- verify)
 */
import { Secp256k1PrivateKeyExportable } from '@atcute/crypto';
import type { Keypair } from '@atproto/crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseCommitAuthenticated } from '@atproto/sync';
import { Frame } from '@atproto/xrpc-server';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildEvents, CursorClock } from '../src/events/index.ts';
import { IdentityCache, IdentityResolver } from '../src/identity/index.ts';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../src/upstream/index.ts';
import { CheckPool, createVerifyMetrics, Verifier, type VerifyMode } from '../src/verify/index.ts';
import { tempDir } from '../test/support/gateway.ts';
import { SignedRepo, commitFrameOf, type Write } from '../test/support/signed-repo.ts';
import { median, printTable, type Row } from './table.ts';

const REPOS = 40;
const COMMITS_PER_REPO = 75;
const INITIAL_RECORDS = 300;
const RUNS = 5;
/** The peer takes ~7 ms a commit: a fifth of the corpus gives its rate. */
const PEER_FRAMES = 600;
/** Steady arrival rates for the latency rows (commits/s), and the frames sent at each. */
const LATENCY_RATES = [
  { rate: 500, frames: 1_500 },
  { rate: 2_000, frames: 3_000 },
];
const LATENCY_RUNS = 3;
/** Worker-thread counts measured beside verification on the main thread (the default here, one per core but one, is 1). */
const WORKERS = [1, 2];
const threads = (pool: CheckPool) => `(--verify-workers ${pool.size})`;

/** An @atproto/crypto Keypair whose signing is @atcute/crypto's (OpenSSL) K-256 key. */
async function fastKeypair(): Promise<Keypair> {
  const key = await Secp256k1PrivateKeyExportable.createKeypair();
  const did = await key.exportPublicKey('did');
  return { jwtAlg: 'ES256K', did: () => did, sign: (message) => key.sign(message) };
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function buildCorpus(): Promise<{ frames: Uint8Array[]; keys: Map<string, string> }> {
  const random = mulberry32(11);
  let rkeys = 0;
  const rkey = () => `3l${String(rkeys++).padStart(11, 'a')}`;
  const createdAt = '2026-12-01T00:00:00.000Z';
  const like = (): Write => ({ action: 'create', collection: 'app.bsky.feed.like', rkey: rkey(), record: { $type: 'app.bsky.feed.like', createdAt, subject: { uri: 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l2s5xxv2ze2c', cid: 'bafyreigsurgdk3bfyh6ehghe5qdsc45qct6ic2lpn4gvxsrjvsaoojxtdy' } } });
  const post = (text: string): Write => ({ action: 'create', collection: 'app.bsky.feed.post', rkey: rkey(), record: { $type: 'app.bsky.feed.post', text, langs: ['en'], createdAt } });
  const keys = new Map<string, string>();
  const frames: Uint8Array[] = [];
  let seq = 0;
  const repos: { repo: SignedRepo; posts: string[] }[] = [];
  for (let r = 0; r < REPOS; r++) {
    const did = `did:plc:bench${String(r).padStart(19, '0')}`;
    const initial = Array.from({ length: INITIAL_RECORDS }, (_, i) => (i % 3 ? like() : post(`post ${i}`)));
    const repo = await SignedRepo.create(did, await fastKeypair(), initial);
    keys.set(did, repo.signingKey);
    repos.push({ repo, posts: initial.filter((w) => w.collection === 'app.bsky.feed.post').map((w) => w.rkey) });
  }
  // Round by round across the repos, as a firehose interleaves them (each repo's commits in order).
  for (let c = 0; c < COMMITS_PER_REPO; c++) {
    for (const { repo, posts } of repos) {
      const roll = random();
      let writes: Write[];
      if (roll < 0.1 && posts.length > 0) {
        writes = [{ action: 'update', collection: 'app.bsky.feed.post', rkey: posts[Math.floor(random() * posts.length)]!, record: { $type: 'app.bsky.feed.post', text: `edited ${c}`, createdAt } }];
      } else if (roll < 0.2 && posts.length > 0) {
        writes = [{ action: 'delete', collection: 'app.bsky.feed.post', rkey: posts.splice(Math.floor(random() * posts.length), 1)[0]! }];
      } else if (roll < 0.25) {
        writes = [post(`thread ${c}/1`), post(`thread ${c}/2`), like()];
      } else {
        const write = roll < 0.7 ? like() : post(`post ${c}`);
        if (write.collection === 'app.bsky.feed.post') posts.push(write.rkey);
        writes = [write];
      }
      frames.push(commitFrameOf(await repo.commit(++seq, writes)));
    }
  }
  return { frames, keys };
}

async function withCache<T>(keys: Map<string, string>, run: (identity: IdentityResolver) => Promise<T>): Promise<T> {
  const dir = tempDir('contrail-bench-verify-');
  const cache = new IdentityCache({ path: dir.path, maxEntries: keys.size * 2 });
  const now = Date.now();
  for (const [did, signingKey] of keys) cache.put({ did, signingKey, pdsEndpoint: undefined, handle: undefined, fetchedAt: now });
  try {
    return await run(new IdentityResolver({ plcUrl: 'http://127.0.0.1:1', cache, allowPrivateEndpoints: true }));
  } finally {
    await cache.close();
    dir.remove();
  }
}

interface Measured {
  events: number;
  seconds: number;
  /** Commits measured. */
  commits: number;
  /** CPU time of every thread of the process, in µs. */
  cpuMicros: number;
  /** CPU time of the main thread alone, in µs. */
  mainThreadMicros: number;
}

/** The main thread's CPU time so far, in µs (Linux: the first field of its schedstat is ns on a CPU). */
function mainThreadMicros(): number {
  return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
}

/** Runs `work` over `commits` commits, timing it on the wall clock and in CPU time. */
async function measured(commits: number, work: () => Promise<number>): Promise<Measured> {
  const cpu = process.cpuUsage();
  const mainThread = mainThreadMicros();
  const started = performance.now();
  const events = await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { events, seconds, commits, cpuMicros: used.user + used.system, mainThreadMicros: mainThreadMicros() - mainThread };
}

/**
 * Frames through decode → (Verifier) → events, as the gateway runs them: events built, and the
 * time taken (worker threads already started).
 */
function verifierFor(mode: VerifyMode, identity: IdentityResolver, deliver: (message: UpstreamMessage) => void, checkPool?: CheckPool): Verifier {
  return new Verifier({ mode, identity, logger: pino({ level: 'silent' }), metrics: createVerifyMetrics(new Registry()), deliver, maxQueued: Infinity, checkPool });
}

async function ingest(frames: Uint8Array[], mode: VerifyMode | 'off', identity: IdentityResolver, checkPool?: CheckPool): Promise<Measured> {
  return measured(frames.length, async () => {
    const clock = new CursorClock();
    let events = 0;
    const toEvents = (message: UpstreamMessage) => {
      if (message.type === 'commit') events += buildEvents(message, clock).entries.length;
    };
    const verifier = mode === 'off' ? undefined : verifierFor(mode, identity, toEvents, checkPool);
    for (const bytes of frames) {
      const message = parseMessage(decodeFrame(bytes, 10_000_000));
      if (verifier) verifier.handle(message);
      else toEvents(message);
    }
    await verifier?.idle();
    return events;
  });
}

async function reference(frames: Uint8Array[], keys: Map<string, string>): Promise<Measured> {
  const idResolver = { did: { resolveAtprotoKey: async (did: string) => keys.get(did)! } } as unknown as Parameters<typeof parseCommitAuthenticated>[0];
  const subset = frames.slice(0, PEER_FRAMES);
  return measured(subset.length, async () => {
    let events = 0;
    for (const bytes of subset) {
      const frame = Frame.fromBytes(bytes) as unknown as { body: Parameters<typeof parseCommitAuthenticated>[1] };
      events += (await parseCommitAuthenticated(idResolver, frame.body)).length;
    }
    return events;
  });
}

/**
 * Frames handed in at a steady `rate`, as a relay's arrive: for each commit, the ms from taking
 * up its frame to its events being built (through the Verifier unless `off`).
 */
async function pacedLatency(frames: Uint8Array[], rate: number, mode: VerifyMode | 'off', identity: IdentityResolver, checkPool?: CheckPool): Promise<number[]> {
  const clock = new CursorClock();
  const takenUp = new Map<number, number>();
  const samples: number[] = [];
  const toEvents = (message: UpstreamMessage) => {
    if (message.type !== 'commit') return;
    buildEvents(message, clock);
    samples.push(performance.now() - takenUp.get(message.seq)!);
  };
  const verifier = mode === 'off' ? undefined : verifierFor(mode, identity, toEvents, checkPool);
  const started = performance.now();
  let sent = 0;
  while (sent < frames.length) {
    const due = Math.min(frames.length, Math.floor(((performance.now() - started) * rate) / 1000));
    for (; sent < due; sent++) {
      const at = performance.now();
      const message = parseMessage(decodeFrame(frames[sent]!, 10_000_000));
      if (message.type === 'commit') takenUp.set(message.seq, at);
      if (verifier) verifier.handle(message);
      else toEvents(message);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await verifier?.idle();
  return samples;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

export async function run(): Promise<Row[]> {
  const started = performance.now();
  const { frames, keys } = await buildCorpus();
  process.stderr.write(`bench/verify: ${frames.length} commits of ${REPOS} repos built in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  // Long-lived, as in the gateway: each pool's workers warm up in the unmeasured first round.
  const pools = WORKERS.map((workers) => new CheckPool(workers, pino({ level: 'silent' })));
  await Promise.all(pools.map((pool) => pool.ready()));
  return withCache(keys, async (identity) => {
    const cases: [[string, () => Promise<Measured>], ...Array<[string, () => Promise<Measured>]>] = [
      ['--verify off (decode + events)', () => ingest(frames, 'off', identity)],
      ['--verify signatures', () => ingest(frames, 'signatures', identity)],
      ['--verify full', () => ingest(frames, 'full', identity)],
      ...pools.flatMap((pool): Array<[string, () => Promise<Measured>]> => [
        [`--verify signatures ${threads(pool)}`, () => ingest(frames, 'signatures', identity, pool)],
        [`--verify full ${threads(pool)}`, () => ingest(frames, 'full', identity, pool)],
      ]),
      ['@atproto/sync parseCommitAuthenticated (peer)', () => reference(frames, keys)],
    ];
    const runs = new Map<string, Measured[]>();
    for (let round = 0; round <= RUNS; round++) {
      for (const [name, measure] of cases) {
        const result = await measure();
        if (result.events === 0) throw new Error(`${name} built no events`);
        if (round > 0) runs.set(name, [...(runs.get(name) ?? []), result]);
      }
    }
    const rateOf = (name: string) => median(runs.get(name)!.map((m) => m.commits / m.seconds));
    const off = rateOf(cases[0]![0]);
    const peer = rateOf(cases.at(-1)![0]);
    const rows: Row[] = cases.map(([name]) => {
      const rate = rateOf(name);
      const cpu = median(runs.get(name)!.map((m) => m.cpuMicros / m.commits));
      const mainThread = median(runs.get(name)!.map((m) => m.mainThreadMicros / m.commits));
      return { bench: 'verify', case: name, 'commits/s': Math.round(rate), 'CPU µs/commit': Math.round(cpu), 'main thread µs/commit': Math.round(mainThread), 'vs off': `${(rate / off).toFixed(2)}×`, 'vs peer': `${(rate / peer).toFixed(1)}×` };
    });
    const latencyCases: Array<[string, VerifyMode | 'off', CheckPool | undefined]> = [
      ['--verify off', 'off', undefined],
      ['--verify full', 'full', undefined],
      ...pools.map((pool): [string, VerifyMode, CheckPool] => [`--verify full ${threads(pool)}`, 'full', pool]),
    ];
    for (const { rate, frames: count } of LATENCY_RATES) {
      const p50s = new Map<string, number[]>();
      const p99s = new Map<string, number[]>();
      for (let round = 0; round < LATENCY_RUNS; round++) {
        for (const [name, mode, pool] of latencyCases) {
          const sorted = (await pacedLatency(frames.slice(0, count), rate, mode, identity, pool)).sort((a, b) => a - b);
          p50s.set(name, [...(p50s.get(name) ?? []), percentile(sorted, 0.5)]);
          p99s.set(name, [...(p99s.get(name) ?? []), percentile(sorted, 0.99)]);
        }
      }
      const offP50 = median(p50s.get('--verify off')!);
      for (const [name] of latencyCases) {
        const p50 = median(p50s.get(name)!);
        rows.push({ bench: 'verify', case: `latency at ${rate} commits/s, ${name}`, 'p50 ms': p50.toFixed(3), 'p99 ms': median(p99s.get(name)!).toFixed(3), 'added p50 ms': name === '--verify off' ? '' : (p50 - offP50).toFixed(3) });
      }
    }
    await Promise.all(pools.map((pool) => pool.close()));
    return rows;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const before = loadavg()[0]!.toFixed(1);
  const rows = await run();
  printTable(`verify: ${REPOS * COMMITS_PER_REPO} real signed commits with sync 1.1 proofs, median of ${RUNS} runs (latency: of ${LATENCY_RUNS}); 1-minute load average ${before} at the start, ${loadavg()[0]!.toFixed(1)} at the end`, rows);
}
