/**
 * bench/verify: what `--verify` costs per commit, beside ingest without it, in the same run.
 *
 * The corpus is real: repos written and signed by @atproto/repo (the PDS's own write path), each
 * starting with 300 records so the MST has the depth of a lived-in repo, then a mix of commits —
 * likes and posts created, posts edited and deleted, now and then three writes in one commit —
 * each framed as a PDS frames it, with its sync 1.1 proof (prevData, ops[].prev, the MST nodes).
 * K-256 signing goes through @atcute/crypto's OpenSSL-backed key so building the corpus is quick.
 *
 * Each mode runs the gateway's own path on one core: decode and parse the frame, then (with
 * --verify) the Verifier with every key already in the identity cache (the steady state), then
 * event building. Peer: @atproto/sync's parseCommitAuthenticated, the reference TypeScript
 * verifier (signature and MST proof), over the same frames. Also the latency one commit gets
 * added when the stream is quiet (handle → delivered, p50/p99).
 *
 *   flock /work/bench.lock npx tsx bench/verify.ts     (or: npm run bench -- verify)
 */
import { Secp256k1PrivateKeyExportable } from '@atcute/crypto';
import type { Keypair } from '@atproto/crypto';
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
const LATENCY_SAMPLES = 500;
/** Worker-thread counts measured beside verification on the main thread. */
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
}

/**
 * Frames through decode → (Verifier) → events, as the gateway runs them: events built, and the
 * time taken (worker threads already started).
 */
async function ingest(frames: Uint8Array[], mode: VerifyMode | 'off', identity: IdentityResolver, checkPool?: CheckPool): Promise<Measured> {
  const clock = new CursorClock();
  let events = 0;
  const toEvents = (message: UpstreamMessage) => {
    if (message.type === 'commit') events += buildEvents(message, clock).entries.length;
  };
  if (mode === 'off') {
    const started = performance.now();
    for (const bytes of frames) toEvents(parseMessage(decodeFrame(bytes, 10_000_000)));
    return { events, seconds: (performance.now() - started) / 1000 };
  }
  const verifier = new Verifier({ mode, identity, logger: pino({ level: 'silent' }), metrics: createVerifyMetrics(new Registry()), deliver: toEvents, maxQueued: Infinity, checkPool });
  const started = performance.now();
  for (const bytes of frames) verifier.handle(parseMessage(decodeFrame(bytes, 10_000_000)));
  await verifier.idle();
  return { events, seconds: (performance.now() - started) / 1000 };
}

async function reference(frames: Uint8Array[], keys: Map<string, string>): Promise<Measured> {
  const idResolver = { did: { resolveAtprotoKey: async (did: string) => keys.get(did)! } } as unknown as Parameters<typeof parseCommitAuthenticated>[0];
  let events = 0;
  const started = performance.now();
  for (const bytes of frames) {
    const frame = Frame.fromBytes(bytes) as unknown as { body: Parameters<typeof parseCommitAuthenticated>[1] };
    events += (await parseCommitAuthenticated(idResolver, frame.body)).length;
  }
  return { events, seconds: (performance.now() - started) / 1000 };
}

async function quietLatency(frames: Uint8Array[], mode: VerifyMode, identity: IdentityResolver, checkPool?: CheckPool): Promise<{ p50: number; p99: number }> {
  let delivered: () => void = () => {};
  const verifier = new Verifier({ mode, identity, logger: pino({ level: 'silent' }), metrics: createVerifyMetrics(new Registry()), deliver: () => delivered(), checkPool });
  const samples: number[] = [];
  for (const bytes of frames.slice(0, LATENCY_SAMPLES)) {
    const message = parseMessage(decodeFrame(bytes, 10_000_000));
    const done = new Promise<void>((resolve) => (delivered = resolve));
    const started = performance.now();
    verifier.handle(message);
    await done;
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(samples.length * 0.5)] ?? NaN, p99: samples[Math.floor(samples.length * 0.99)] ?? NaN };
}

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
    const rates = new Map<string, number[]>();
    for (let round = 0; round <= RUNS; round++) {
      for (const [name, measure] of cases) {
        const { events, seconds } = await measure();
        if (events === 0) throw new Error(`${name} built no events`);
        if (round > 0) rates.set(name, [...(rates.get(name) ?? []), frames.length / seconds]);
      }
    }
    const off = median(rates.get(cases[0][0])!);
    const rows: Row[] = cases.map(([name]) => {
      const rate = median(rates.get(name)!);
      return { bench: 'verify', case: name, 'commits/s': Math.round(rate), 'µs/commit': (1e6 / rate).toFixed(1), 'share of off': `${((off / rate) * 100).toFixed(0)}%`.replace(/^/, ''), 'vs off': `${(rate / off).toFixed(2)}×` };
    });
    for (const pool of [undefined, ...pools]) {
      for (const mode of ['signatures', 'full'] as const) {
        const { p50, p99 } = await quietLatency(frames, mode, identity, pool);
        rows.push({ bench: 'verify', case: `added latency, quiet stream, --verify ${mode}${pool ? ` ${threads(pool)}` : ''}`, 'p50 ms': p50.toFixed(3), 'p99 ms': p99.toFixed(3) });
      }
    }
    await Promise.all(pools.map((pool) => pool.close()));
    return rows;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable(`verify: ${REPOS * COMMITS_PER_REPO} real signed commits with sync 1.1 proofs, median of ${RUNS} runs, one core`, await run());
}
