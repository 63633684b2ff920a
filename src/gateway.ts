import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { commitSignatureCheck, createBackfillMetrics, fetchLatestCommit, SnapshotSource, type FetchLimits } from './backfill/index.ts';
import type { GatewayConfig } from './config.ts';
import { CursorClock } from './events/index.ts';
import { createIdentityMetrics, IdentityCache, IdentityResolver } from './identity/index.ts';
import { checkDictionary, startMetricsEndpoint, startServer, type ServerOptions, type SubscribeServer } from './server/index.ts';
import { joinCluster, type ClusterNode, type IngestRun } from './cluster/index.ts';
import { collectionKeeper, createStoreMetrics, DataDirWatch, EventStore, Ingester, mapSizeFor, registerBufferGauges, Retention, type Batch } from './store/index.ts';
import { createUpstreamMetrics, DEMO_UPSTREAM, DemoUpstream, DropReporter, FirehoseClient, redactUrl, type UpstreamReader } from './upstream/index.ts';
import { CheckPool, createVerifyMetrics, SigningKeys, Verifier, type ResyncedRepo } from './verify/index.ts';
import { createLogger, startStatusLog } from './logs.ts';

export interface Gateway {
  readonly port: number;
  readonly metricsPort: number;
  readonly server: SubscribeServer;
  /** The event buffer (benchmarks watch its commits to time the server's part of live latency). */
  readonly store: EventStore;
  /** DID → signing key and PDS endpoint, cached under the data dir (verification and backfill use it). */
  readonly identity: IdentityResolver;
  /** Resolves if the node cannot go on (its data dir is gone: data-dir-watch.ts; a cluster node whose buffer holds events its stream does not, or whose stream holds a record it cannot decode): `contrail serve` then stops and exits 1. */
  readonly failed: Promise<Error>;
  /**
   * Graceful stop: close clients with 1001, stop reading upstream, commit what was read (giving
   * up after flushTimeoutMs if commits keep failing — nothing is lost, the upstream cursor is
   * still behind it), close the store. Resolves whether everything read was committed.
   */
  stop(flushTimeoutMs?: number): Promise<{ flushed: boolean }>;
}

export interface GatewayTuning {
  logger?: Logger;
  /** Subscriber-hub knobs (slow-consumer window, high-water mark, ping interval) for tests and benchmarks. */
  hub?: ServerOptions['hub'];
  /** How often the one-line status is logged (default every minute). */
  statusIntervalMs?: number;
  closeTimeoutMs?: ServerOptions['closeTimeoutMs'];
  /** How long upstream frames may all come at or below the highest seq read before /ready fails (default 10 s). */
  seqsBehindMs?: number;
  /** How long upstream frames may all keep nothing (undecoded, commits with every op dropped, #info and error frames) before /ready fails (default 10 s). */
  nothingKeptMs?: number;
  /** Whether replay workers run at nice 19 (true by default, as in production; see ServerOptions). */
  lowerReplayWorkerPriority?: boolean;
}

/** How this node gets events into its buffer: reading the relay itself, or as a member of a cluster. */
interface IngestRole {
  /** Why the node should not take clients now (empty when it can). */
  problems(): string[];
  /** See Gateway.failed. */
  readonly failed: Promise<Error>;
  /** Stops ingest and commits what was read; false if that could not be done in time. */
  stop(flushTimeoutMs: number): Promise<boolean>;
}

/** A single process: it fails only if its data dir is gone (a cluster node's follower watches its own). */
function standalone(run: IngestRun, dataDirWatch: DataDirWatch): IngestRole {
  return {
    problems: () => (run.connected ? (run.notIngesting ? [run.notIngesting] : []) : [`upstream not connected: ${run.problem ?? 'not started'}`]),
    failed: dataDirWatch.gone,
    stop: (flushTimeoutMs) => {
      dataDirWatch.stop();
      return run.stop(flushTimeoutMs);
    },
  };
}

/** Backfill fetches: tries per repo, the first retry's delay (doubling), the longest Retry-After honoured. */
const BACKFILL_ATTEMPTS = 3;
const BACKFILL_BACKOFF_MS = 1_000;
const BACKFILL_MAX_RETRY_AFTER_MS = 60_000;

/** Wires the stages: upstream → (verify, with identity) → events → store → (cluster) → (backfill) → server. */
export async function startGateway(config: GatewayConfig, tuning: GatewayTuning = {}): Promise<Gateway> {
  const logger = tuning.logger ?? createLogger(config.logLevel);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Read once (the file may be a pipe), for the store's blocks and the server's frames alike.
  const dictionary = readDictionary(config.zstdDictionary);
  const store = new EventStore({
    dataDir: config.dataDir,
    hotLogBytes: config.hotCacheBytes,
    fsync: config.fsync,
    dictionary,
    mapSizeBytes: mapSizeFor(config.maxBufferBytes),
    logger,
  });
  registerBufferGauges(registry, store);
  if (store.previousRun.setAside) {
    logger.error(
      { setAside: store.previousRun.setAside },
      'THE LAST RUN ENDED IN A MACHINE CRASH WITHOUT --fsync: its buffer may be torn, so it was set aside and a new one started (clients cannot replay what it held)',
    );
  } else if (store.previousRun.unclean) {
    logger.warn('the last run did not stop cleanly (killed?); its buffer is intact and ingest resumes from the saved cursor');
  }
  try {
    return await startStages(config, tuning, logger, registry, store, dictionary);
  } catch (err) {
    // A failed start (a port in use, an unreadable dictionary) leaves no run marker behind: the
    // next start must not take it for a crash (and after a reboot, set the buffer aside).
    await store.close();
    throw err;
  }
}

async function startStages(config: GatewayConfig, tuning: GatewayTuning, logger: Logger, registry: Registry, store: EventStore, dictionary: Buffer): Promise<Gateway> {
  const identityCache = new IdentityCache({ path: join(config.dataDir, 'identity'), maxEntries: config.identityCacheEntries });
  const identity = new IdentityResolver({
    plcUrl: config.plcUrl,
    cache: identityCache,
    allowPrivateEndpoints: config.allowPrivateEndpoints,
    metrics: createIdentityMetrics(registry),
    logger,
  });
  const backfill = config.backfill ? startBackfill(config, identity, store, logger, registry) : undefined;
  const span = store.span();
  const cursor = store.upstreamCursor;
  // The held window's repos are counted, not listed (up to 256 DIDs).
  const upstreamCursor = cursor && { url: redactUrl(cursor.url), seq: cursor.seq, ...(cursor.through !== undefined && { through: cursor.through, heldRepos: cursor.held?.length ?? 0 }) };
  logger.info({ dataDir: config.dataDir, ...span, upstreamCursor, lastTimeUs: store.lastTimeUs }, 'opened the event buffer');

  const storeMetrics = createStoreMetrics(registry);
  const upstreamMetrics = createUpstreamMetrics(registry);
  // One reporter for every upstream drop, whether the reader or ingest finds it.
  const drops = new DropReporter(upstreamMetrics.drops, logger);
  const verifyMetrics = config.verify !== 'off' ? createVerifyMetrics(registry) : undefined;
  // Shared by every ingest run (a cluster node may lead more than once); closed on a failed start below, as on stop.
  const checkPool = config.verify !== 'off' && config.verifyWorkers > 0 ? new CheckPool(config.verifyWorkers, logger) : undefined;
  // Started now, so the first commits do not wait for the threads (one that cannot start is logged by the pool).
  checkPool?.ready().catch(() => {});
  const resyncKeys = new SigningKeys();
  const resyncLimits: FetchLimits = {
    maxBytes: config.verifyResyncMaxBytes,
    timeoutMs: config.verifyResyncTimeoutMs,
    attempts: config.verifyResyncAttempts,
    backoffMs: RESYNC_BACKOFF_MS,
    maxRetryAfterMs: RESYNC_MAX_RETRY_AFTER_MS,
    allowPrivateEndpoints: config.allowPrivateEndpoints,
  };
  /** Why the last commit failed, while commits are failing. */
  let storeFailure: string | undefined;
  /** Whether the running ingest has read events it has yet to commit (replays let that commit go first). */
  let commitDue = () => false;
  /** Reads the relay into `commit` (the local store, or the cluster's event stream) until stopped. */
  const startIngest = (commit?: (batch: Batch) => Promise<void>): IngestRun => {
    let firehose: UpstreamReader | undefined;
    // Reading pauses while any later stage asks it to.
    const pausedBy = new Set<string>();
    const backpressure = (stage: string) => (paused: boolean) => {
      if (paused) pausedBy.add(stage);
      else pausedBy.delete(stage);
      if (pausedBy.size > 0) firehose?.pause();
      else firehose?.resume();
    };
    let verifier: Verifier | undefined;
    const ingester = new Ingester({
      store,
      clock: new CursorClock(store.timeUsFloor),
      upstreamUrl: config.upstream,
      keepCollection: collectionKeeper(config.ingestCollections),
      logger,
      metrics: storeMetrics,
      drops,
      onBackpressure: backpressure('store'),
      onStoreHealth: (healthy, error) => (storeFailure = healthy ? undefined : error),
      heldBelow: () => verifier?.heldBelow(),
      heldRepos: () => verifier?.heldRepos() ?? [],
      commit,
    });
    if (verifyMetrics && config.verify !== 'off') {
      verifier = new Verifier({
        mode: config.verify,
        identity,
        logger,
        metrics: verifyMetrics,
        deliver: (message, released) => ingester.handle(message, released),
        onBackpressure: backpressure('verify'),
        checkPool,
        resync: config.verifyResyncs > 0 ? (did) => resyncRepo(did, identity, resyncKeys, resyncLimits) : undefined,
        maxResyncs: config.verifyResyncs,
        resyncRetryMs: config.verifyResyncRetryMs,
      });
      logger.info({ verify: config.verify, plcUrl: config.plcUrl, workers: config.verifyWorkers }, 'verifying commits before emitting them');
    }
    commitDue = () => ingester.commitDue;
    const intake = verifier ?? ingester;
    const demo = DEMO_UPSTREAM.exec(config.upstream);
    const reader: UpstreamReader = demo
      ? new DemoUpstream({
          seed: Number(demo[1] ?? 1),
          resumeCursor: () => ingester.resumeCursor(),
          onMessage: (message) => intake.handle(message),
          logger,
          metrics: upstreamMetrics,
        })
      : new FirehoseClient({
          url: config.upstream,
          resumeCursor: () => ingester.resumeCursor(),
          onMessage: (message) => intake.handle(message),
          logger,
          metrics: upstreamMetrics,
          drops,
          maxFrameBytes: config.maxFrameBytes,
          seqsBehindMs: tuning.seqsBehindMs,
          nothingKeptMs: tuning.nothingKeptMs,
        });
    firehose = reader;
    reader.start();
    return {
      get connected() {
        return reader.connected;
      },
      get problem() {
        return reader.problem;
      },
      get notIngesting() {
        return reader.notIngesting;
      },
      async stop(flushTimeoutMs) {
        await reader.stop();
        await verifier?.idle();
        const flushed = await ingester.flush(flushTimeoutMs);
        ingester.ended();
        verifier?.ended();
        return flushed;
      },
      abandon: () => ingester.abandon(),
    };
  };
  let role: IngestRole | undefined;
  let readsUpstream = () => true;
  let joinedCluster: (node: ClusterNode) => void = () => {};
  const clusterJoined = new Promise<ClusterNode>((resolve) => (joinedCluster = resolve));
  const retention = new Retention({ store, maxAgeMs: config.retentionMs, maxBytes: config.maxBufferBytes, logger, metrics: storeMetrics });

  let server: SubscribeServer | undefined;
  let metricsEndpoint: Awaited<ReturnType<typeof startMetricsEndpoint>>;
  try {
    server = await startServer({
      store,
      logger,
      registry,
      host: config.host,
      port: config.port,
      transport: config.transport,
      zstdDictionary: dictionary,
      zstdDictionaryPath: config.zstdDictionary,
      zstdReplayLevel: config.zstdReplayLevel,
      maxSubscribers: config.maxSubscribers,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      maxDeflateSubscribers: config.maxDeflateSubscribers,
      trustProxy: config.trustProxy,
      backfill,
      replayWorkers: config.replayWorkers,
      lowerReplayWorkerPriority: tuning.lowerReplayWorkerPriority,
      closeTimeoutMs: tuning.closeTimeoutMs,
      hub: {
        slowWindowMs: config.slowConsumerWindowMs,
        commitDue: () => commitDue(),
        // Clients can connect before the node has joined: their cursors wait for it too.
        awaitClusterStreamEnd: config.cluster && ((wanted) => clusterJoined.then((node) => node.streamEndApplied(wanted))),
        ...tuning.hub,
      },
      readiness: () => {
        const problems = role ? role.problems() : ['upstream not connected: not started'];
        if (storeFailure !== undefined) problems.push(`store commits are failing: ${storeFailure}`);
        return { ready: problems.length === 0, problems };
      },
    });
    metricsEndpoint = await startMetricsEndpoint(registry, config.metricsHost, config.metricsPort);
  } catch (err) {
    await server?.close();
    await checkPool?.close();
    identity.stop();
    await identityCache.close();
    throw err;
  }
  logger.info({ host: config.metricsHost, port: metricsEndpoint.port }, 'serving Prometheus metrics at /metrics');
  try {
    if (config.cluster) {
      const node = await joinCluster(config.cluster, store, config.dataDir, logger, registry, startIngest, config.upstream);
      joinedCluster(node);
      role = node;
      readsUpstream = () => node.leading;
    } else {
      const dataDirWatch = new DataDirWatch(config.dataDir);
      role = standalone(startIngest(), dataDirWatch);
    }
  } catch (err) {
    await server.close();
    metricsEndpoint.server.close();
    await checkPool?.close();
    identity.stop();
    await identityCache.close();
    throw err;
  }
  const ingestRole = role;
  retention.start();
  const statusLog = startStatusLog(
    logger,
    {
      store,
      subscribers: () => server.hub.size,
      upstreamLagSeconds: async () => (await storeMetrics.upstreamLag.get()).values[0]?.value,
      readsUpstream,
    },
    tuning.statusIntervalMs,
  );

  return {
    port: server.port,
    metricsPort: metricsEndpoint.port,
    server,
    store,
    identity,
    failed: ingestRole.failed,
    async stop(flushTimeoutMs = 10_000) {
      statusLog.stop();
      // Before the store closes: the replay workers have its environment open.
      await server.close();
      const flushed = await ingestRole.stop(flushTimeoutMs);
      if (!flushed) {
        logger.error('could not commit the last events before stopping; the saved upstream cursor is behind them, so the next start reads them again');
      }
      await retention.stop();
      metricsEndpoint.server.close();
      await checkPool?.close();
      await store.close();
      // Its waits end (a new repo's lookup between retries, or waiting for a directory's time), and with them their timers.
      identity.stop();
      await identityCache.close();
      logger.info({ flushed }, 'stopped');
      return { flushed };
    },
  };
}

/** Repo snapshots for backfill=true subscribers: PDS from the DID document, commit signature checked under --verify. */
function startBackfill(config: GatewayConfig, identity: IdentityResolver, store: EventStore, logger: Logger, registry: Registry): SnapshotSource {
  const keys = config.verify === 'off' ? undefined : new SigningKeys();
  return new SnapshotSource({
    resolve: async (did) => {
      const { pdsEndpoint, signingKey } = await identity.resolve(did);
      if (!pdsEndpoint) throw new Error('its DID document names no PDS (#atproto_pds service)');
      const refreshKey = async () => (await identity.refresh(did)).signingKey;
      return { pdsUrl: pdsEndpoint, checkCommit: keys && commitSignatureCheck(keys, signingKey, refreshKey) };
    },
    limits: {
      maxBytes: config.backfillMaxRepoBytes,
      timeoutMs: config.backfillTimeoutMs,
      attempts: BACKFILL_ATTEMPTS,
      backoffMs: BACKFILL_BACKOFF_MS,
      maxRetryAfterMs: BACKFILL_MAX_RETRY_AFTER_MS,
      allowPrivateEndpoints: config.allowPrivateEndpoints,
    },
    perHost: config.backfillPerHost,
    concurrency: config.backfillConcurrency,
    cacheBytes: config.backfillCacheBytes,
    cacheTtlMs: config.backfillCacheTtlMs,
    tip: () => store.hotLog.newest,
    logger,
    metrics: createBackfillMetrics(registry),
  });
}

/** A resync fetch's retries: the first one's delay (doubling), the longest Retry-After honoured. */
const RESYNC_BACKOFF_MS = 1_000;
const RESYNC_MAX_RETRY_AFTER_MS = 60_000;
/**
 * Re-establishes a repo that went out of sync under --verify: its latest signed commit from its PDS
 * (com.atproto.sync.getLatestCommit, then getBlocks for that block alone, or getRepo's root from a
 * PDS that implements neither, through the backfill stage's guarded, CID-checked fetch), signed with the DID's key; resolves with that commit's rev
 * and MST root (the repo's next commit must chain from it).
 */
export async function resyncRepo(did: string, identity: IdentityResolver, keys: SigningKeys, limits: FetchLimits): Promise<ResyncedRepo> {
  const { pdsEndpoint, signingKey } = await identity.resolve(did);
  if (!pdsEndpoint) throw new Error('its DID document names no PDS (#atproto_pds service)');
  const checkSignature = commitSignatureCheck(keys, signingKey, async () => (await identity.refresh(did)).signingKey);
  const commit = await fetchLatestCommit(pdsEndpoint, did, limits, checkSignature);
  return { rev: commit.rev, data: commit.data.bytes };
}

/**
 * `contrail serve`: runs until SIGINT/SIGTERM, then stops gracefully and exits 0 (1 if the last
 * events could not be committed). A signal during start-up stops as soon as start-up is done.
 * A node that cannot go on (Gateway.failed) stops the same way, saying why, and exits 1.
 */
export async function runGateway(config: GatewayConfig): Promise<void> {
  const logger = createLogger(config.logLevel);
  let gateway: Gateway | undefined;
  let signalled: string | undefined;
  const shutdown = async (signal: string, failed = false) => {
    if (signalled) return;
    signalled = signal;
    if (!gateway) return; // still starting: stopped below once it is up
    logger.info({ signal }, 'shutting down');
    const { flushed } = await gateway.stop();
    process.exit(flushed && !failed ? 0 : 1);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  try {
    gateway = await startGateway(config, { logger });
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'contrail could not start');
    process.stderr.write(`contrail: ${(err as Error).message}\n`);
    process.exit(1);
  }
  void gateway.failed.then((err) => {
    logger.fatal({ err: err.message }, 'contrail cannot go on');
    process.stderr.write(`contrail: ${err.message}\n`);
    return shutdown('failure', true);
  });
  if (signalled) {
    const signal = signalled;
    signalled = undefined;
    await shutdown(signal);
  }
}

/** The zstd dictionary's bytes, checked whole and usable before the store takes it for its blocks (and keeps a copy) and the server for its frames. */
function readDictionary(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the zstd dictionary ${path}: ${(err as Error).message}`);
  }
  try {
    checkDictionary(bytes);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  return bytes;
}
