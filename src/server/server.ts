/**
 * Package server serves the buffer to WebSocket clients at /subscribe with Jetstream v1's
 * wire, plus a few plain HTTP routes.
 *
 * How it works: a Transport (uWebSockets.js when its native build loads, `ws` otherwise) owns
 * the sockets and calls a SocketHandler (routes.ts). The upgrade is decided before any
 * WebSocket exists — bad query parameters get HTTP 400 with the reason, limits get 503/429 —
 * and an accepted connection becomes a Subscriber in the SubscriberHub (subscribers.ts).
 * The hub moves each subscriber's position forward through the store until it reaches the
 * tip, then pushes committed batches to it through the LiveIndex (live-index.ts), which looks
 * subscribers up by DID and collection so a narrow filter costs nothing for other events.
 *
 * Why this shape: one position per subscriber and one way to move it means replay, live, and
 * "fell behind then caught up" are the same code, so there is no replay→live seam to lose or
 * reorder events at. Memory per subscriber is the socket's send buffer, capped by a high-water
 * mark; beyond it the subscriber reads from the store again on drain. Events are sent as the
 * exact JSON bytes the store holds, or as one zstd frame per event compressed once and shared.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EventStore } from '../store/event-store.ts';
import { EventCompressor } from './compression.ts';
import { ServerMetrics } from './metrics.ts';
import { createSocketHandler, type Readiness } from './routes.ts';
import { SubscriberHub, type SubscriberHubOptions } from './subscribers.ts';
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
  zstdDictionaryPath: string;
  readiness: () => Readiness;
  maxSubscribers: number;
  maxConnectionsPerIp: number;
  /** Take the client address from X-Forwarded-For (behind the operator's own proxy). */
  trustProxy?: boolean;
  /** Tuning for tests and benchmarks; defaults suit production. */
  hub?: Partial<Pick<SubscriberHubOptions, 'highWaterBytes' | 'slowWindowMs' | 'pingIntervalMs'>>;
}

export interface SubscribeServer {
  readonly transport: 'uws' | 'ws';
  readonly port: number;
  readonly hub: SubscriberHub;
  /** Stops listening and sends every subscriber a close frame (1001 Going Away). */
  close(): void;
}

export async function startServer(options: ServerOptions): Promise<SubscribeServer> {
  const { logger, registry, store } = options;
  const compressor = EventCompressor.fromFile(options.zstdDictionaryPath);
  let hub: SubscriberHub | undefined;
  const metrics = new ServerMetrics(registry, () => hub?.counts() ?? []);
  hub = new SubscriberHub({ store, compressor, logger, metrics, ...options.hub });
  const handler = createSocketHandler({
    hub,
    store,
    compressor,
    metrics,
    readiness: options.readiness,
    maxSubscribers: options.maxSubscribers,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    trustProxy: options.trustProxy ?? false,
  });
  const transport = await chooseTransport(options.transport, handler, logger);
  const port = await transport.listen(options.host, options.port);
  logger.info(
    { transport: transport.name, host: options.host, port, zstdDictionaryId: compressor.dictionaryId, dictionary: options.zstdDictionaryPath },
    `serving /subscribe on ${options.host}:${port}`,
  );
  const readyHub = hub;
  return {
    transport: transport.name,
    port,
    hub: readyHub,
    close() {
      transport.stopListening();
      readyHub.closeAll(1001, 'server shutting down');
      readyHub.stop();
    },
  };
}

async function chooseTransport<S>(choice: ServerOptions['transport'], handler: SocketHandler<S>, logger: Logger): Promise<Transport> {
  if (choice === 'ws') {
    logger.info('transport: ws (chosen with --transport ws)');
    return new WsTransport(handler);
  }
  const loaded = await loadUws();
  if ('uws' in loaded) {
    logger.info('transport: uws');
    return new UwsTransport(loaded.uws, handler);
  }
  if (choice === 'uws') throw new Error(`--transport uws: uWebSockets.js is not available: ${loaded.unavailable}`);
  logger.warn(`transport: ws (uWebSockets.js not available for Node ${process.version}: ${loaded.unavailable})`);
  return new WsTransport(handler);
}
