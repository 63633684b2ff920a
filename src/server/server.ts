import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { SnapshotSource } from '../backfill/index.ts';
import type { EventStore } from '../store/index.ts';
import { DEFAULT_LEVEL, EventCompressor } from './compression.ts';
import { ReplayPool } from './replay-pool.ts';
import { ServerMetrics } from './metrics.ts';
import { createSocketHandler, type Readiness } from './routes.ts';
import type { SubscriberHubOptions } from './hub-options.ts';
import { SubscriberHub } from './subscribers.ts';
import type { SocketHandler, Transport } from './transport.ts';
import { loadUws, UwsTransport } from './uws-transport.ts';
import { WsTransport } from './ws-transport.ts';

export type { Readiness } from './routes.ts';

export interface ServerOptions {
  store: EventStore;
  logger: Logger;
  registry: Registry;
  host: string;
  port: number;
  transport: 'auto' | 'uws' | 'ws';
  /** The zstd dictionary subscribers' frames are made with, checked whole and usable (checkDictionary). */
  zstdDictionary: Buffer;
  /** Where it was read from, for the log. */
  zstdDictionaryPath: string;
  /** The zstd level of frames made for replays (--zstd-replay-level); live events' stay at DEFAULT_LEVEL. */
  zstdReplayLevel: number;
  readiness: () => Readiness;
  maxSubscribers: number;
  maxConnectionsPerIp: number;
  /** Subscribers that may have permessage-deflate at once (0 = never negotiated). */
  maxDeflateSubscribers: number;
  /** Proxies in front that append to X-Forwarded-For; the client address is the one the outermost appended. */
  trustProxy?: number;
  /** Repo snapshots for backfill=true subscribers; without it backfill is refused. */
  backfill?: SnapshotSource;
  /** Worker threads that read replays from LMDB (0 or absent: the main thread reads them). */
  replayWorkers?: number;
  /**
   * Whether replay workers run at nice 19 (true or absent, as in production). The test harness turns
   * it off: on a machine loaded by other processes a nice-19 thread gets next to no CPU, and every
   * replay a test waits for crawls.
   */
  lowerReplayWorkerPriority?: boolean;
  /** How long an ended HTTP stream's or a refused connection's peer gets to read what is queued, on the ws transport (tests shorten it; uWS cuts such a connection itself). */
  closeTimeoutMs?: number;
  /** The hub's tuning for tests and benchmarks (defaults suit production), and the gateway's hooks into ingest. */
  hub?: Partial<Pick<SubscriberHubOptions, 'highWaterBytes' | 'slowWindowMs' | 'pingIntervalMs' | 'heartbeatTickMs' | 'nowMs' | 'commitDue' | 'awaitClusterStreamEnd'>>;
}

export interface SubscribeServer {
  readonly transport: 'uws' | 'ws';
  readonly port: number;
  readonly hub: SubscriberHub;
  /** The replay worker threads, if any. */
  readonly replayPool: ReplayPool | undefined;
  /** Stops listening, sends every subscriber a close frame (1001 Going Away) and stops the replay workers. */
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<SubscribeServer> {
  const { logger, registry, store } = options;
  const compressor = new EventCompressor(options.zstdDictionary, DEFAULT_LEVEL, options.zstdReplayLevel);
  let hub: SubscriberHub | undefined;
  const metrics = new ServerMetrics(registry, () => hub?.counts() ?? []);
  const backfill = options.backfill && { snapshots: options.backfill, store, logger, metrics: options.backfill.options.metrics };
  const replayPool = options.replayWorkers
    ? new ReplayPool(options.replayWorkers, { location: store.location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level, replayLevel: compressor.replayLevel, lowerPriority: options.lowerReplayWorkerPriority ?? true }, logger)
    : undefined;
  // Started now, so the first replays do not wait for the threads (one that cannot start is logged by the pool).
  replayPool?.ready().catch(() => {});
  hub = new SubscriberHub({ store, logger, metrics, backfill, replayPool, ...options.hub });
  const handler = createSocketHandler({
    hub,
    store,
    compressor,
    metrics,
    readiness: options.readiness,
    maxSubscribers: options.maxSubscribers,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    maxDeflateSubscribers: options.maxDeflateSubscribers,
    trustProxy: options.trustProxy ?? 0,
  });
  let transport: Transport;
  let port: number;
  try {
    transport = await chooseTransport(options.transport, handler, logger, options.closeTimeoutMs);
    port = await transport.listen(options.host, options.port);
  } catch (err) {
    await replayPool?.close();
    throw err;
  }
  logger.info(
    { transport: transport.name, host: options.host, port, zstdDictionaryId: compressor.dictionaryId, dictionary: options.zstdDictionaryPath },
    `serving /subscribe on ${options.host}:${port} (and v2 at /xrpc/network.bsky.jetstream.subscribeEvents)`,
  );
  const readyHub = hub;
  return {
    transport: transport.name,
    port,
    hub: readyHub,
    replayPool,
    async close() {
      transport.stopListening();
      readyHub.closeAll();
      readyHub.stop();
      await replayPool?.close();
    },
  };
}

async function chooseTransport<S>(choice: ServerOptions['transport'], handler: SocketHandler<S>, logger: Logger, closeTimeoutMs?: number): Promise<Transport> {
  if (choice === 'ws') {
    logger.info('transport: ws (chosen with --transport ws)');
    return new WsTransport(handler, closeTimeoutMs);
  }
  const loaded = await loadUws();
  if ('uws' in loaded) {
    logger.info('transport: uws');
    return new UwsTransport(loaded.uws, handler);
  }
  if (choice === 'uws') throw new Error(`--transport uws: uWebSockets.js is not available: ${loaded.unavailable}`);
  logger.warn(`transport: ws (uWebSockets.js not available for Node ${process.version}: ${loaded.unavailable})`);
  return new WsTransport(handler, closeTimeoutMs);
}
