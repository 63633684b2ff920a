import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Options } from 'yargs';
import { collectionKeeper } from './store/index.ts';
import { DEMO_UPSTREAM, normalizeUpstreamUrl } from './upstream/index.ts';
import { RESYNC_RETRY_MAX_MS } from './verify/index.ts';
import { natsServers, type ClusterOptions } from './cluster/index.ts';
import { DEFAULT_REPLAY_LEVEL, defaultReplayWorkers, ZSTD_LEVELS } from './server/index.ts';

/** Everything `contrail serve` needs, parsed and checked (see cli.ts for the flags). */
export interface GatewayConfig {
  upstream: string;
  /** Collections whose commit ops are stored (NSIDs or prefixes ending in .*); empty = all. */
  ingestCollections: string[];
  host: string;
  port: number;
  metricsHost: string;
  metricsPort: number;
  dataDir: string;
  logLevel: LogLevel;
  retentionMs: number;
  maxBufferBytes: number;
  hotCacheBytes: number;
  /** Worker threads that read replays from the buffer (0: the main thread does). */
  replayWorkers: number;
  maxFrameBytes: number;
  transport: TransportChoice;
  zstdDictionary: string;
  /** The zstd level of frames made for compressed subscribers' replays (live events' stay at level 3). */
  zstdReplayLevel: number;
  maxSubscribers: number;
  maxConnectionsPerIp: number;
  maxDeflateSubscribers: number;
  slowConsumerWindowMs: number;
  /** Proxies in front that append to X-Forwarded-For (0: the header is ignored). */
  trustProxy: number;
  fsync: boolean;
  verify: VerifyChoice;
  /** Worker threads that run the signature and MST checks (0: the main thread does). */
  verifyWorkers: number;
  /** Out-of-sync repos fetched again from their PDS at once (0: none; they wait for a valid #sync). */
  verifyResyncs: number;
  /** A resync's answers (getLatestCommit's, getBlocks' CAR, or getRepo's from a PDS without them) larger than this fail the resync. */
  verifyResyncMaxBytes: number;
  /** Time for one attempt at a resync's fetch. */
  verifyResyncTimeoutMs: number;
  /** Attempts at a resync's fetch. */
  verifyResyncAttempts: number;
  /**
   * After a failed resync, the repo's first commit this long later starts another (doubling per
   * failure in a row, up to 1 h); a repo failing again soon after a successful resync waits until
   * this long after it (doubling per resync in a row so followed, up to 1 h).
   */
  verifyResyncRetryMs: number;
  plcUrl: string;
  allowPrivateEndpoints: boolean;
  identityCacheEntries: number;
  /** Serve backfill=true (fetching wanted repos from their PDS); off, it is refused with a reason. */
  backfill: boolean;
  backfillMaxRepoBytes: number;
  backfillTimeoutMs: number;
  backfillPerHost: number;
  backfillConcurrency: number;
  backfillCacheBytes: number;
  backfillCacheTtlMs: number;
  /** Set when the node joins a cluster on NATS JetStream (--nats); undefined for a single process. */
  cluster?: ClusterOptions;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const TRANSPORTS = ['auto', 'uws', 'ws'] as const;
export const VERIFY_CHOICES = ['off', 'signatures', 'full'] as const;
export type VerifyChoice = (typeof VERIFY_CHOICES)[number];
export type TransportChoice = (typeof TRANSPORTS)[number];

export const DEFAULT_DICTIONARY = fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url));

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90m", "36h", "7d", "30s", "500ms" → milliseconds. */
export function parseDuration(text: string): number {
  const [, amount, unit] = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text) ?? [];
  const unitMs = DURATION_UNITS[unit?.toLowerCase() ?? ''];
  if (unitMs === undefined) throw new Error(`${JSON.stringify(text)} is not a duration (use e.g. 90m, 36h, 7d)`);
  const ms = Number(amount) * unitMs;
  if (ms <= 0) throw new Error(`duration ${JSON.stringify(text)} must be positive`);
  return ms;
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** --verify-resync-retry: its waits are capped at 1 h, so a longer one would act as 1 h unsaid. */
export function parseResyncRetry(text: string): number {
  const ms = parseDuration(text);
  if (ms > RESYNC_RETRY_MAX_MS) throw new Error(`--verify-resync-retry ${JSON.stringify(text)} is longer than the 1 h cap on its waits: give at most 1h`);
  return ms;
}

/** A zstd compression level: a whole number within the levels zstd takes. */
export function parseZstdLevel(text: string): number {
  const level = /^-?\d+$/.test(text) ? Number(text) : NaN;
  if (!(level >= ZSTD_LEVELS.min && level <= ZSTD_LEVELS.max)) throw new Error(`--zstd-replay-level ${JSON.stringify(text)} is not a zstd level (${ZSTD_LEVELS.min} to ${ZSTD_LEVELS.max})`);
  return level;
}

/** "10GB" (10^9), "64MiB" (2^20), "5000" (bytes) → bytes. */
export function parseByteSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  const unitBytes = SIZE_UNITS[(match?.[2] ?? 'b').toLowerCase()];
  if (!match || unitBytes === undefined) throw new Error(`${JSON.stringify(text)} is not a size (use e.g. 512MB, 10GB, 64MiB)`);
  const bytes = Math.floor(Number(match[1]) * unitBytes);
  if (bytes <= 0) throw new Error(`size ${JSON.stringify(text)} must be positive`);
  return bytes;
}

export function parsePort(value: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(port <= 65535)) throw new Error(`${JSON.stringify(value)} is not a port (0-65535)`);
  return port;
}

/** Flags that mean something given alone: `--trust-proxy` is one proxy. Every other string flag needs its value. */
const VALUE_OPTIONAL = new Set(['trust-proxy']);
/**
 * Flags whose empty value means something: no collections named is all of them. Any other empty
 * value is refused, as a variable left empty by a template is no choice: an empty --metrics-host
 * would serve metrics on every address (listen reads '' as none).
 */
const EMPTY_ALLOWED = new Set(['ingest-collections']);

/**
 * The options as the command line takes them: a string flag needs its value, and no flag is
 * given twice. yargs would give a flag left without its value its default (`--verify` alone ran
 * unverified) and read a negative value as short flags (`--retention -5h`: -5 and -h, the help),
 * and it makes a repeated flag a list of both values.
 */
export function commandLineOptions<T extends Record<string, Options>>(options: T): T {
  const checked = Object.entries(options).map(([flag, option]) => {
    const { coerce } = option;
    const once = (value: unknown): unknown => {
      if (Array.isArray(value)) throw new Error(`--${flag} is given more than once (${value.join(', ')}): give it once`);
      if (value === '' && !VALUE_OPTIONAL.has(flag) && !EMPTY_ALLOWED.has(flag)) throw new Error(`--${flag} is empty: give it a value, or leave it out for the default`);
      return coerce ? coerce(value) : value;
    };
    return [flag, { ...option, requiresArg: option.type === 'string' && !VALUE_OPTIONAL.has(flag), coerce: once }];
  });
  return Object.fromEntries(checked) as T;
}

/** --trust-proxy: a hop count; alone (or true/yes/on) it means one proxy, false/no/off none. */
export function parseTrustProxy(value: string): number {
  if (/^(|true|yes|on)$/i.test(value)) return 1;
  if (/^(false|no|off)$/i.test(value)) return 0;
  if (!/^\d+$/.test(value)) throw new Error(`${JSON.stringify(value)} is not a number of proxies (e.g. 1), true or false`);
  return Number(value);
}

export function parsePositiveCount(value: string): number {
  const count = parseCount(value);
  if (count === 0) throw new Error('0 is not allowed here (at least 1)');
  return count;
}

export function parseCount(value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${JSON.stringify(value)} is not a whole number >= 0`);
  return Number(value);
}

/**
 * The values a command's flags take from CONTRAIL_<FLAG> variables, checked here so that an error
 * names the variable (the same check on the command line names the flag). Only the command's own
 * flags are read, and only those not given on the command line, which wins.
 *
 * Kubernetes gives every pod service links such as CONTRAIL_PORT=tcp://10.0.0.1:6008 for a Service
 * named contrail (CONTRAIL_METRICS_PORT for one named contrail-metrics). A port flag whose variable
 * has that exact shape was not set by the operator (a pod's own env would replace it), so it is
 * ignored with a warning instead of crash-looping the pod.
 */
export function flagsFromEnvironment(
  options: Record<string, Options>,
  argv: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
  warn: (message: string) => void = (message) => process.stderr.write(`contrail: ${message}\n`),
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [flag, option] of Object.entries(options)) {
    const name = environmentVariable(flag);
    const value = env[name];
    if (value === undefined || givenOnCommandLine(argv, flag)) continue;
    if (option.coerce === parsePort && KUBERNETES_SERVICE_LINK.test(value)) {
      warn(`ignoring ${name}=${value}: a Kubernetes service link, not a port (set ${name} in the pod, or enableServiceLinks: false)`);
      continue;
    }
    try {
      values[flag] = option.type === 'boolean' ? parseBoolean(value) : checkedString(flag, value, option);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
  }
  return values;
}

export function parseHttpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${JSON.stringify(value)} is not an http(s) URL`);
  return value.replace(/\/+$/, '');
}

export function environmentVariable(flag: string): string {
  return `CONTRAIL_${flag.toUpperCase().replace(/-/g, '_')}`;
}

const KUBERNETES_SERVICE_LINK = /^(tcp|udp|sctp):\/\/[^/\s]+:\d+$/;

function givenOnCommandLine(argv: readonly string[], flag: string): boolean {
  return argv.some((arg) => namesFlag(arg, flag));
}

function namesFlag(arg: string, flag: string): boolean {
  return arg === `--${flag}` || arg.startsWith(`--${flag}=`) || arg === `--no-${flag}`;
}

/**
 * Why a boolean flag is given more than once on the command line, or undefined. yargs keeps a
 * boolean's last value (`--fsync --no-fsync` is false) where it makes any other flag a list,
 * which commandLineOptions refuses: a boolean is counted here, in the arguments before `--`.
 */
export function repeatedBoolean(options: Record<string, Options>, argv: readonly string[]): string | undefined {
  const end = argv.indexOf('--');
  const flags = end < 0 ? argv : argv.slice(0, end);
  for (const [flag, option] of Object.entries(options)) {
    if (option.type !== 'boolean') continue;
    const given = flags.filter((arg) => namesFlag(arg, flag));
    if (given.length > 1) return `--${flag} is given more than once (${given.join(', ')}): give it once`;
  }
  return undefined;
}

function parseBoolean(value: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)?$/i.test(value)) return false;
  throw new Error(`${JSON.stringify(value)} is not a boolean (use true or false)`);
}

function checkedString(flag: string, value: string, option: Options): string {
  if (value === '' && !EMPTY_ALLOWED.has(flag)) throw new Error('empty value: give it one, or unset the variable for the default');
  if (option.choices && !(option.choices as readonly unknown[]).includes(value)) {
    throw new Error(`${JSON.stringify(value)} is not one of ${(option.choices as readonly string[]).join(', ')}`);
  }
  option.coerce?.(value);
  return value;
}

/** "nats://a:4222,nats://b:4222" → the server list, checked as the NATS client will take it (natsServers). */
export function parseNatsServers(value: string): string[] {
  const servers = value.split(',').map((server) => server.trim()).filter((server) => server !== '');
  if (servers.length === 0) throw new Error('--nats needs at least one server URL');
  natsServers(servers);
  return servers;
}

/**
 * The name the cluster's stream (<name>-events) and lease bucket (<name>-leader) are made under:
 * NATS takes only letters, digits, _ and - in a KV bucket's name (the client's own check), so
 * anything else would fail at the join, after the buffer was opened (and, for a letter outside
 * ASCII, after the stream was made in NATS).
 */
export function parseNatsName(value: string): string {
  if (!/^[-\w]+$/.test(value)) throw new Error(`--nats-name: ${JSON.stringify(value)} is not a name NATS takes for a stream and a KV bucket (letters, digits, _ and - only)`);
  return value;
}

export function parseReplicas(value: string): number {
  if (!/^[1-5]$/.test(value)) throw new Error(`${JSON.stringify(value)} is not a replica count (1 to 5; 1 or 3 usually)`);
  return Number(value);
}

/** "app.bsky.feed.*, app.bsky.graph.follow" → the patterns, each checked. */
export function parseCollectionList(value: string): string[] {
  const patterns = value.split(',').map((p) => p.trim()).filter(Boolean);
  collectionKeeper(patterns);
  return patterns;
}

/** A relay address, or `demo` / `demo:<seed>` for the built-in synthetic network. */
export function parseUpstream(value: string): string {
  return DEMO_UPSTREAM.test(value) ? value : normalizeUpstreamUrl(value);
}

/** Why these `serve` flags cannot go together, or undefined when they can. */
export function conflictingFlags(flags: { upstream: string; verify: VerifyChoice }): string | undefined {
  if (DEMO_UPSTREAM.test(flags.upstream) && flags.verify !== 'off') {
    return `--upstream demo sends unsigned commits, so it cannot be used with --verify ${flags.verify}: use --verify off, or a relay or PDS`;
  }
  return undefined;
}

/** The flags of `contrail serve`, kept in one table so the README test can compare against it. */
export const SERVE_OPTIONS = {
  upstream: {
    type: 'string',
    default: 'wss://bsky.network',
    describe: 'Relay or PDS to read: ws(s):// or http(s)://, with or without /xrpc/com.atproto.sync.subscribeRepos; or demo (demo:<seed>): a built-in synthetic network, offline',
    coerce: parseUpstream,
  },
  'ingest-collections': {
    type: 'string',
    default: '',
    defaultDescription: 'all collections',
    describe: 'Store only commit ops of these collections (comma-separated NSIDs or prefixes like app.bsky.feed.*); identity, account and sync events are always kept',
    coerce: parseCollectionList,
  },
  host: { type: 'string', default: '0.0.0.0', describe: 'Address to serve /subscribe and the HTTP routes on (not /metrics: see --metrics-host)' },
  'metrics-host': {
    type: 'string',
    default: '127.0.0.1',
    describe: 'Address to serve Prometheus /metrics on: loopback unless Prometheus runs elsewhere (in Docker: 0.0.0.0, port kept private)',
  },
  port: { type: 'string', default: '6008', describe: 'Port for /subscribe and the HTTP routes', coerce: parsePort },
  'metrics-port': { type: 'string', default: '6009', describe: 'Port for Prometheus /metrics', coerce: parsePort },
  'data-dir': { type: 'string', default: './data', describe: 'Folder of the LMDB event buffer' },
  'log-level': { type: 'string', default: 'info', choices: LOG_LEVELS, describe: 'Least severe log level written' },
  retention: { type: 'string', default: '24h', describe: 'Keep events this long (e.g. 90m, 36h, 7d)', coerce: parseDuration },
  'max-buffer-bytes': { type: 'string', default: '40GB', describe: 'Trim the oldest events when the buffer exceeds this (40GB holds ~24h of the network)' , coerce: parseByteSize },
  'hot-cache-bytes': { type: 'string', default: '64MiB', describe: 'Recent events kept in memory for subscribers near the tip' , coerce: parseByteSize },
  'replay-workers': {
    type: 'string',
    default: String(defaultReplayWorkers()),
    defaultDescription: 'CPU cores − 1; 0 on two cores or fewer',
    describe: 'Worker threads (at nice 19 on Linux) that read replays from the buffer (LMDB, decompression, filters, zstd frames), so replays never hold up live events (0: on the main thread)',
    coerce: parseCount,
  },
  'max-frame-bytes': { type: 'string', default: '5MB', describe: 'Upstream frames larger than this are dropped (counted)' , coerce: parseByteSize },
  transport: { type: 'string', default: 'auto', choices: TRANSPORTS, describe: 'WebSocket server: uws, ws, or auto (uws when it loads)' },
  'zstd-dictionary': {
    type: 'string',
    default: DEFAULT_DICTIONARY,
    defaultDescription: 'the bundled dictionaries/contrail-v1.zstd-dict',
    describe: "zstd dictionary for compressed subscribers (Jetstream v1's, for existing compressed clients)",
  },
  'zstd-replay-level': {
    type: 'string',
    default: String(DEFAULT_REPLAY_LEVEL),
    describe: 'zstd level of the frames made for compressed subscribers replaying (live events stay at 3): lower is cheaper and larger, but 0 is zstd\'s default, 3; negative levels as --zstd-replay-level=-5',
    coerce: parseZstdLevel,
  },
  'max-subscribers': { type: 'string', default: '10000', describe: 'Subscribers served at once; more get HTTP 503', coerce: parseCount },
  'max-connections-per-ip': {
    type: 'string',
    default: '100',
    describe: 'Subscribers per client IP; more get HTTP 429',
    coerce: parseCount,
  },
  'max-deflate-subscribers': {
    type: 'string',
    default: '25',
    describe: 'Subscribers given permessage-deflate at once (on uws it costs CPU per subscriber and frame); more get plain frames; 0 = never',
    coerce: parseCount,
  },
  'slow-consumer-window': {
    type: 'string',
    default: '60s',
    describe: "Drop (with ConsumerTooSlow) a subscriber that reads under half the stream's rate for this long",
    coerce: parseDuration,
  },
  fsync: {
    type: 'boolean',
    default: false,
    describe: 'fsync every commit: the buffer survives power loss, at a few ms of latency per event (see README, Design)',
  },
  'trust-proxy': {
    type: 'string',
    // No default: yargs would give it to --trust-proxy alone, which means 1 (none given: 0, in cli.ts).
    defaultDescription: '0',
    describe:
      'Proxies of yours in front that append to X-Forwarded-For: the client is the address the outermost one appended (--trust-proxy alone means 1)',
    coerce: parseTrustProxy,
  },
  verify: {
    type: 'string',
    default: 'off',
    choices: VERIFY_CHOICES,
    describe: "Check commits before emitting them: signatures (against the repo's signing key) or full (also sync 1.1 MST proofs)",
  },
  'verify-workers': {
    type: 'string',
    default: String(Math.max(1, availableParallelism() - 1)),
    defaultDescription: 'CPU cores − 1, at least 1',
    describe: 'With --verify: worker threads that check signatures and MST proofs, each repo always on the same one (0: on the main thread)',
    coerce: parseCount,
  },
  'verify-resyncs': {
    type: 'string',
    default: '4',
    describe: 'With --verify: out-of-sync repos whose signed commit is fetched again from their PDS (com.atproto.sync.getLatestCommit and getBlocks, or getRepo from a PDS without them) at once; 0: none, their commits wait for a valid #sync',
    coerce: parseCount,
  },
  'verify-resync-max-bytes': { type: 'string', default: '1MiB', describe: 'With --verify: a resync whose answer from the PDS (getLatestCommit, getBlocks, or getRepo from a PDS without them) is larger than this fails', coerce: parseByteSize },
  'verify-resync-timeout': { type: 'string', default: '120s', describe: 'With --verify: time for one attempt at a resync\'s fetch', coerce: parseDuration },
  'verify-resync-attempts': { type: 'string', default: '3', describe: 'With --verify: attempts at a resync\'s fetch (backing off from 1 s; a Retry-After up to 60 s is honoured)', coerce: parsePositiveCount },
  'verify-resync-retry': {
    type: 'string',
    default: '30s',
    describe: "With --verify: after a failed resync, the repo's first commit this long later starts another (the wait doubles with each failure in a row, up to 1 h); a repo failing again soon after a successful resync waits until this long after it (doubling with each resync in a row so followed, up to 1 h); meanwhile its commits are withheld; at most 1 h",
    coerce: parseResyncRetry,
  },
  'plc-url': { type: 'string', default: 'https://plc.directory', describe: 'did:plc directory that DID documents are read from', coerce: parseHttpUrl },
  'allow-private-endpoints': {
    type: 'boolean',
    default: false,
    describe: 'Let DID documents point fetches (did:web hosts, PDS endpoints) at loopback, private or link-local addresses',
  },
  'identity-cache-entries': {
    type: 'string',
    default: '500000',
    describe: 'Resolved DIDs kept in the identity cache (LMDB, under the data dir); the least recently fetched are evicted',
    coerce: parseCount,
  },
  backfill: {
    type: 'boolean',
    default: true,
    describe: 'Serve backfill=true: fetch the wanted repos from their PDS for subscribers that ask (--no-backfill refuses it with HTTP 400)',
  },
  'backfill-max-repo-bytes': { type: 'string', default: '256MiB', describe: 'Backfill: a repo export (getRepo CAR) larger than this is refused', coerce: parseByteSize },
  'backfill-timeout': { type: 'string', default: '120s', describe: 'Backfill: time for one attempt at fetching and reading a repo', coerce: parseDuration },
  'backfill-per-host': { type: 'string', default: '4', describe: 'Backfill: repo fetches at once from one PDS host', coerce: parsePositiveCount },
  'backfill-concurrency': { type: 'string', default: '8', describe: 'Backfill: repo fetches at once in all (each holds up to a repo in memory)', coerce: parsePositiveCount },
  'backfill-cache-bytes': { type: 'string', default: '64MiB', describe: 'Backfill: recent repo snapshots kept for other subscribers of the same repos', coerce: parseByteSize },
  'backfill-cache-ttl': { type: 'string', default: '60s', describe: 'Backfill: how long a repo snapshot is reused', coerce: parseDuration },
  nats: {
    type: 'string',
    describe: 'Join a cluster on NATS JetStream: comma-separated server URLs (nats://host:4222,…; nats://user:password@host:4222 if NATS requires credentials). Without it contrail is a single process',
    defaultDescription: 'none (a single process)',
    coerce: parseNatsServers,
  },
  'nats-replicas': { type: 'string', default: '3', describe: 'Copies NATS keeps of the cluster stream and lease (1 for a single nats-server)', coerce: parseReplicas },
  'nats-retention': {
    type: 'string',
    default: '6h',
    describe: 'How long the cluster stream keeps batches: how long a node may be down and still catch up',
    coerce: parseDuration,
  },
  'nats-lease': { type: 'string', default: '5s', describe: 'Ingest leader lease: failover starts at most this long after a leader dies', coerce: parseDuration },
  'nats-name': { type: 'string', default: 'contrail', describe: 'Names the stream and lease bucket, so several clusters can share one NATS (letters, digits, _ and -)', coerce: parseNatsName },
  'node-id': { type: 'string', describe: "This node's name in the cluster (logs, lease holder)", defaultDescription: 'hostname-pid' },
  'nats-hop-timing': {
    type: 'string',
    describe: "For bench/cluster.ts --hops: at exit, write to this file when each batch passed each of the cluster's hops, and the collections",
    defaultDescription: 'none',
  },
} as const satisfies Record<string, Options>;

export const INSPECT_OPTIONS = {
  'data-dir': SERVE_OPTIONS['data-dir'],
} as const satisfies Record<string, Options>;
