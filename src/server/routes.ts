import type { EventStore } from '../store/index.ts';
import type { EventCompressor } from './compression.ts';
import { OptionError, parseFilter } from './filter.ts';
import type { ServerMetrics } from './metrics.ts';
import type { Subscriber, SubscriberHub } from './subscribers.ts';
import { SUBSCRIBE_PATH, type HttpReply, type HttpRequestInfo, type SocketHandler } from './transport.ts';

export interface Readiness {
  ready: boolean;
  /** What is not ready, for the /ready body. */
  problems: string[];
}

export interface RouteOptions {
  hub: SubscriberHub;
  store: EventStore;
  compressor: EventCompressor;
  metrics: ServerMetrics;
  readiness: () => Readiness;
  maxSubscribers: number;
  maxConnectionsPerIp: number;
  trustProxy: boolean;
}

const CORS = { 'access-control-allow-origin': '*' };

/** HTTP routes and the /subscribe upgrade decision, shared by both transports. */
export function createSocketHandler(options: RouteOptions): SocketHandler<Subscriber> {
  const { hub, store, compressor, metrics } = options;
  return {
    http(request) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return text(405, 'only GET is served here');
      switch (request.path) {
        case '/':
          return text(200, HOME_PAGE);
        case '/health':
          return text(200, 'ok');
        case '/ready': {
          const { ready, problems } = options.readiness();
          return ready ? text(200, 'ready') : text(503, `not ready: ${problems.join('; ')}`);
        }
        case '/dictionary':
          return {
            status: 200,
            headers: {
              ...CORS,
              'content-type': 'application/octet-stream',
              'x-zstd-dictionary-id': String(compressor.dictionaryId),
              'content-disposition': `attachment; filename="contrail-${compressor.dictionaryId}.zstd-dict"`,
            },
            body: compressor.dictionary,
          };
        case '/stats':
          return {
            status: 200,
            headers: { ...CORS, 'content-type': 'application/json' },
            body: JSON.stringify({ ...store.span(), trimmedUpTo: store.trimmedUpTo, subscribers: hub.size, upstreamCursor: store.upstreamCursor ?? null }),
          };
        case SUBSCRIBE_PATH:
          return text(426, 'GET /subscribe needs a WebSocket upgrade (ws:// or wss://)');
        default:
          return text(404, 'not found');
      }
    },

    upgrade(request) {
      const refuse = (status: number, result: string, reason: string) => {
        metrics.connections.inc({ result });
        return { refuse: text(status, reason) };
      };
      let parsed: ReturnType<typeof parseSubscribeQuery>;
      try {
        parsed = parseSubscribeQuery(request);
      } catch (err) {
        if (!(err instanceof OptionError)) throw err;
        return refuse(400, 'bad_request', err.message);
      }
      if (hub.size >= options.maxSubscribers) {
        return refuse(503, 'too_many_subscribers', `this server is at its limit of ${options.maxSubscribers} subscribers; try again later`);
      }
      const remoteAddress = clientAddress(request, options.trustProxy);
      if (hub.connectionsFrom(remoteAddress) >= options.maxConnectionsPerIp) {
        return refuse(429, 'too_many_from_ip', `at most ${options.maxConnectionsPerIp} connections per client address`);
      }
      metrics.connections.inc({ result: 'accepted' });
      return { accept: hub.create(parsed.filter, { ...parsed, remoteAddress }) };
    },

    open: (socket, subscriber) => hub.open(subscriber, socket),
    message: (subscriber, data, binary) => hub.message(subscriber, data, binary),
    drain: (subscriber) => hub.drain(subscriber),
    pong: (subscriber) => hub.pong(subscriber),
    close: (subscriber) => hub.closed(subscriber),
  };
}

/** The /subscribe query, Jetstream v1's parameters; every key may repeat; unknown keys are ignored. */
export function parseSubscribeQuery(request: HttpRequestInfo) {
  const query = new URLSearchParams(request.query);
  const filter = parseFilter({
    wantedCollections: query.getAll('wantedCollections'),
    wantedDids: query.getAll('wantedDids'),
    maxMessageSizeBytes: query.get('maxMessageSizeBytes') ?? undefined,
  });
  const cursorText = query.get('cursor') ?? '';
  if (cursorText !== '' && !/^-?\d+$/.test(cursorText)) {
    throw new OptionError(`cursor: ${JSON.stringify(cursorText)} is not an integer (unix microseconds, e.g. a time_us you received)`);
  }
  const cursor = cursorText === '' ? undefined : Number(cursorText);
  const compress = booleanParam(query, 'compress') || (request.header('socket-encoding') ?? '').includes('zstd');
  return { filter, cursor, compress, requireHello: booleanParam(query, 'requireHello') };
}

/** The client's address: the socket's, or behind a trusted proxy the first X-Forwarded-For hop. */
function clientAddress(request: HttpRequestInfo, trustProxy: boolean): string {
  const forwarded = trustProxy ? request.header('x-forwarded-for')?.split(',')[0].trim() : undefined;
  return forwarded || request.remoteAddress;
}

/** As in Jetstream v1: exactly `true` is true, anything else false, so a client written against v1 gets the same frames. */
function booleanParam(query: URLSearchParams, name: string): boolean {
  return query.get(name) === 'true';
}

function text(status: number, body: string): HttpReply {
  return { status, headers: { ...CORS, 'content-type': 'text/plain; charset=utf-8' }, body: body + '\n' };
}

const HOME_PAGE = `contrail: a Jetstream-compatible JSON firehose gateway for the AT Protocol.

  WebSocket  /subscribe?wantedCollections=app.bsky.feed.post   record-level JSON events (Jetstream v1 wire)
             parameters: wantedCollections, wantedDids, cursor, compress, requireHello, maxMessageSizeBytes
  GET        /dictionary   the zstd dictionary for compress=true (its ID is in X-Zstd-Dictionary-Id)
  GET        /stats        the replay buffer's span and size
  GET        /health       the process is up
  GET        /ready        the upstream is connected and the store is writable

Docs: the README of the contrail repository (API reference, operations guide); the wire is Jetstream v1's,
https://github.com/bluesky-social/jetstream (v1 README).`;
