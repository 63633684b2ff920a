import { orUnreadable, UnreadableBufferError, type EventStore, type StoreSpan, type UpstreamCursor } from '../store/index.ts';
import { redactUrl } from '../upstream/index.ts';
import { parseBackfill } from './backfill-feed.ts';
import type { EventCompressor } from './compression.ts';
import { takesDeflateOffer } from './deflate-offer.ts';
import { OptionError, goInt64, parseFilter, queryMaxMessageBytes } from './filter.ts';
import type { ServerMetrics } from './metrics.ts';
import { XrpcError, cursorAhead, dictionaryIdParam, parseSubscribeEventsQuery, resolveCursor, xrpcReply } from './subscribe-events.ts';
import { positionAtTime, startsAtOldest, type Admission, type Subscriber } from './subscriber.ts';
import type { SubscriberHub } from './subscribers.ts';
import { SUBSCRIBE_EVENTS_PATH, SUBSCRIBE_PATH, type HttpReply, type HttpRequestInfo, type SocketHandler, type UpgradeAccept } from './transport.ts';
import { SUBSCRIBE_EVENTS_NSID } from './v2-frames.ts';
import { EXPLORER_HEADERS, EXPLORER_PAGE } from './explorer-page.ts';
import { WEBSOCKET_VERSION, asksForWebSocket, webSocketKeyFault, webSocketVersionFault } from './websocket-handshake.ts';
import { ndjsonWire, sseWire, v1Wire, v2Wire, type Wire } from './wire.ts';

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
  /** Subscribers that may have permessage-deflate at once (0 = never negotiated); more get plain frames. */
  maxDeflateSubscribers: number;
  /** Proxies in front that append to X-Forwarded-For (0: ignore the header). */
  trustProxy: number;
}

const GET_ZSTD_DICTIONARY_PATH = '/xrpc/network.bsky.jetstream.getZstdDictionary';
/** The xrpc.v1.json framing token v2 clients offer in Sec-WebSocket-Protocol. */
const XRPC_JSON_PROTOCOL = 'xrpc.v1.json';
const BOTH_COMPRESSIONS = 'choose one compression: zstd or permessage-deflate, not both (a client that wants zstd must not offer permessage-deflate)';

/**
 * zstd asked while the client offers permessage-deflate. v2 documents a 400. On v1 /subscribe,
 * zstd wins and the offer is declined: Jetstream v1 never negotiated deflate, so v1 clients
 * built on libraries that offer it by default (Node's ws does) kept working with compress=true.
 */
type ZstdWithDeflate = 'refuse' | 'decline';

// Page scripts on other origins may read the dictionary's ID (to pick the right dictionary).
const CORS = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'X-Zstd-Dictionary-Id' };

export const SSE_PATH = '/stream';
export const NDJSON_PATH = '/stream.ndjson';

/** Every path the server answers over plain HTTP (GET and HEAD); anything else is a 404. */
export const HTTP_PATHS = [
  '/',
  '/api',
  SSE_PATH,
  NDJSON_PATH,
  '/health',
  '/ready',
  '/dictionary',
  GET_ZSTD_DICTIONARY_PATH,
  '/stats',
  SUBSCRIBE_PATH,
  SUBSCRIBE_EVENTS_PATH,
] as const;
type HttpPath = (typeof HTTP_PATHS)[number];

function isHttpPath(path: string): path is HttpPath {
  return (HTTP_PATHS as readonly string[]).includes(path);
}

/** The streams' response headers; no-transform and X-Accel-Buffering keep proxies from holding events back. */
const STREAM_HEADERS = { ...CORS, 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' };

/** A connection as the transport carries it: what was admitted, then its subscriber once open. */
interface Connection {
  admission: Admission;
  subscriber?: Subscriber;
}

/** HTTP routes and the WebSocket upgrade decisions, shared by both transports. */
export function createSocketHandler(options: RouteOptions): SocketHandler<Connection> {
  const { hub, store, compressor, metrics } = options;
  const wires = {
    v1: v1Wire(compressor, false),
    v1Zstd: v1Wire(compressor, true),
    v2: v2Wire(compressor, false),
    v2Zstd: v2Wire(compressor, true),
    sse: sseWire(),
    ndjson: ndjsonWire(),
  };
  const dictionaryReply = (): HttpReply => ({
    status: 200,
    headers: {
      ...CORS,
      'content-type': 'application/octet-stream',
      'x-zstd-dictionary-id': String(compressor.dictionaryId),
      'content-disposition': `attachment; filename="contrail-${compressor.dictionaryId}.zstd-dict"`,
    },
    body: compressor.dictionary,
  });
  /**
   * The checks both wires share once their query is understood: compression, limits. `zstd` is
   * false, or what a deflate offer beside it gets.
   */
  const admit = (request: HttpRequestInfo, zstd: false | ZstdWithDeflate): { refuse: { status: number; result: string; reason: string } } | { deflate: boolean } => {
    // The one reading of the offer: the transports negotiate exactly what this decides.
    const offersDeflate = takesDeflateOffer(request.header('sec-websocket-extensions'));
    if (zstd === 'refuse' && offersDeflate && options.maxDeflateSubscribers > 0) return { refuse: { status: 400, result: 'bad_request', reason: BOTH_COMPRESSIONS } };
    if (hub.size >= options.maxSubscribers) {
      return { refuse: { status: 503, result: 'too_many_subscribers', reason: `this server is at its limit of ${options.maxSubscribers} subscribers; try again later` } };
    }
    if (hub.connectionsFrom(clientAddress(request, options.trustProxy)) >= options.maxConnectionsPerIp) {
      return { refuse: { status: 429, result: 'too_many_from_ip', reason: `at most ${options.maxConnectionsPerIp} connections per client address` } };
    }
    return { deflate: offersDeflate && !zstd && hub.deflating < options.maxDeflateSubscribers };
  };

  /** A time_us cursor past this cluster node's buffer, resolved again once the node caught up (Admission.resolveAhead). */
  const resolveAheadAtTime = (cursor: number | undefined): Admission['resolveAhead'] =>
    hub.settlesAheadCursors && cursor !== undefined && cursor > store.lastTimeUs ? () => ({ position: positionAtTime(store, cursor) }) : undefined;

  const refuseV1 = (status: number, result: string, reason: string) => {
    metrics.connections.inc({ wire: 'v1', result });
    return { refuse: text(status, reason) };
  };
  const refuseV2 = (status: number, result: string, error: string, message: string) => {
    metrics.connections.inc({ wire: 'v2', result });
    return { refuse: xrpcReply(status, error, message) };
  };
  /**
   * An upgrade whose handshake headers cannot open a WebSocket, refused in its path's format: a bad
   * key is a 400; a version other than 13 is a 426 naming the one spoken (RFC 6455 section 4.2.2).
   */
  const refuseBadHandshake = (request: HttpRequestInfo): { refuse: HttpReply } | undefined => {
    const keyFault = webSocketKeyFault(request.header('sec-websocket-key'));
    const versionFault = keyFault === undefined ? webSocketVersionFault(request.header('sec-websocket-version')) : undefined;
    const fault = keyFault ?? versionFault;
    if (fault === undefined) return undefined;
    const status = keyFault === undefined ? 426 : 400;
    const refused = request.path === SUBSCRIBE_EVENTS_PATH ? refuseV2(status, 'bad_request', 'InvalidRequest', fault) : refuseV1(status, 'bad_request', fault);
    if (versionFault !== undefined) refused.refuse.headers = { ...refused.refuse.headers, 'sec-websocket-version': WEBSOCKET_VERSION };
    return refused;
  };
  /** uWS hands an upgrade whose key it cannot use to the HTTP routes: it gets the upgrade's answer, not the plain-GET 426. */
  const refuseUnusableUpgrade = (request: HttpRequestInfo): HttpReply | undefined =>
    asksForWebSocket(request.header('connection'), request.header('upgrade')) ? refuseBadHandshake(request)?.refuse : undefined;

  const upgradeV1 = (request: HttpRequestInfo): { refuse: HttpReply } | UpgradeAccept<Connection> => {
    let parsed: ReturnType<typeof parseSubscribeQuery>;
    try {
      parsed = parseSubscribeQuery(request, hub.backfillAvailable);
    } catch (err) {
      if (!(err instanceof OptionError)) throw err;
      return refuseV1(400, 'bad_request', err.message);
    }
    const admitted = admit(request, parsed.compress && 'decline');
    if ('refuse' in admitted) return refuseV1(admitted.refuse.status, admitted.refuse.result, admitted.refuse.reason);
    const admission: Admission = {
      filter: parsed.filter,
      wire: parsed.compress ? wires.v1Zstd : wires.v1,
      deflate: admitted.deflate,
      position: positionAtTime(store, parsed.cursor),
      fromOldest: startsAtOldest(store, parsed.cursor),
      resolveAhead: resolveAheadAtTime(parsed.cursor),
      requireHello: parsed.requireHello,
      remoteAddress: clientAddress(request, options.trustProxy),
      heartbeatMs: parsed.heartbeatMs,
      backfill: parsed.backfill,
    };
    // Whatever the client offered first, as ws answers by default (v1 defines no subprotocol).
    const protocol = request.header('sec-websocket-protocol')?.split(',')[0]?.trim();
    return { accept: { admission }, deflate: admitted.deflate, protocol: protocol || undefined };
  };

  const upgradeV2 = (request: HttpRequestInfo): { refuse: HttpReply } | UpgradeAccept<Connection> => {
    let parsed: ReturnType<typeof parseSubscribeEventsQuery>;
    let cursor: ReturnType<typeof resolveCursor>;
    try {
      parsed = parseSubscribeEventsQuery(request, compressor.dictionaryId);
      cursor = resolveCursor(store, parsed.cursor);
    } catch (err) {
      if (!(err instanceof XrpcError)) throw err;
      return refuseV2(err.status, err.error === 'BufferUnreadable' ? 'buffer_unreadable' : 'bad_request', err.error, err.message);
    }
    const admitted = admit(request, parsed.zstd && 'refuse');
    if ('refuse' in admitted) {
      const { status, result, reason } = admitted.refuse;
      const error = status === 400 ? 'InvalidRequest' : status === 429 ? 'RateLimitExceeded' : 'ServiceUnavailable';
      return refuseV2(status, result, error, reason);
    }
    const admission: Admission = {
      filter: parsed.filter,
      wire: parsed.zstd ? wires.v2Zstd : wires.v2,
      deflate: admitted.deflate,
      position: cursor.position,
      greeting: cursor.greeting,
      fromOldest: cursor.fromOldest,
      resolveAhead: hub.settlesAheadCursors && cursorAhead(store, parsed.cursor) ? () => resolveCursor(store, parsed.cursor) : undefined,
      requireHello: false,
      remoteAddress: clientAddress(request, options.trustProxy),
    };
    const offered = (request.header('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
    return { accept: { admission }, deflate: admitted.deflate, protocol: offered.includes(XRPC_JSON_PROTOCOL) ? XRPC_JSON_PROTOCOL : undefined };
  };

  /** /stream and /stream.ndjson: /subscribe's checks, answered before any byte of the stream. */
  const stream = (request: HttpRequestInfo, wire: Wire, contentType: string) => {
    const refuse = (status: number, result: string, reason: string) => {
      metrics.connections.inc({ wire: wire.name, result });
      return text(status, reason);
    };
    // A WebSocket client wants /subscribe; an offer of another protocol (h2c) is ignored, as every route ignores it.
    if (asksForWebSocket(request.header('connection'), request.header('upgrade'))) {
      return refuse(400, 'bad_request', `${request.path} is a plain HTTP stream: request it without an Upgrade header (WebSockets: ${SUBSCRIBE_PATH})`);
    }
    let parsed: ReturnType<typeof parseStreamQuery>;
    try {
      parsed = parseStreamQuery(request);
    } catch (err) {
      if (!(err instanceof OptionError)) throw err;
      return refuse(400, 'bad_request', err.message);
    }
    const admitted = admit(request, false);
    if ('refuse' in admitted) return refuse(admitted.refuse.status, admitted.refuse.result, admitted.refuse.reason);
    const headers = { ...STREAM_HEADERS, 'content-type': contentType };
    if (request.method === 'HEAD') return { status: 200, headers, body: '' };
    const admission: Admission = {
      filter: parsed.filter,
      wire,
      deflate: false,
      position: positionAtTime(store, parsed.cursor),
      fromOldest: startsAtOldest(store, parsed.cursor),
      resolveAhead: resolveAheadAtTime(parsed.cursor),
      requireHello: false,
      remoteAddress: clientAddress(request, options.trustProxy),
      heartbeatMs: parsed.heartbeatMs,
      limit: parsed.limit,
    };
    return { stream: { headers, session: { admission } } };
  };

  const routes: Record<HttpPath, (request: HttpRequestInfo) => ReturnType<SocketHandler<Connection>['http']>> = {
    // Browsers get the live explorer; curl and scripts get the plain-text summary. Both say so
    // (Vary), so a cache in front never hands one to the other.
    '/': (request) => {
      const reply = (request.header('accept') ?? '').includes('text/html') ? { status: 200, headers: EXPLORER_HEADERS, body: EXPLORER_PAGE } : text(200, API_SUMMARY);
      return { ...reply, headers: { ...reply.headers, vary: 'Accept' } };
    },
    '/api': () => text(200, API_SUMMARY),
    [SSE_PATH]: (request) => stream(request, wires.sse, 'text/event-stream; charset=utf-8'),
    [NDJSON_PATH]: (request) => stream(request, wires.ndjson, 'application/x-ndjson; charset=utf-8'),
    '/health': () => text(200, 'ok'),
    '/ready': () => {
      const { ready, problems } = options.readiness();
      return ready ? text(200, 'ready') : text(503, `not ready: ${problems.join('; ')}`);
    },
    '/dictionary': dictionaryReply,
    [GET_ZSTD_DICTIONARY_PATH]: (request) => {
      let id: number | undefined;
      try {
        id = dictionaryIdParam(new URLSearchParams(request.query), 'id');
      } catch (err) {
        if (!(err instanceof XrpcError)) throw err;
        return xrpcReply(err.status, err.error, err.message);
      }
      if (id === undefined || id === compressor.dictionaryId) return dictionaryReply();
      return xrpcReply(400, 'DictionaryNotFound', `no dictionary ${id} here; the current one is ${compressor.dictionaryId} (omit id to get it)`);
    },
    '/stats': () => {
      const span = orUnreadable(() => store.span());
      // The oldest event cannot be read (a page of the block directory damaged on disk): LMDB's reason, which the store logs once.
      if (span instanceof UnreadableBufferError) return xrpcReply(503, 'BufferUnreadable', span.message);
      return {
        status: 200,
        headers: { ...CORS, 'content-type': 'application/json' },
        body: JSON.stringify({ ...spanWithNulls(span), trimmedUpTo: store.trimmedUpTo, subscribers: hub.size, upstreamCursor: shownCursor(store.upstreamCursor) }),
      };
    },
    [SUBSCRIBE_PATH]: (request) => refuseUnusableUpgrade(request) ?? text(426, 'GET /subscribe needs a WebSocket upgrade (ws:// or wss://)'),
    [SUBSCRIBE_EVENTS_PATH]: (request) =>
      refuseUnusableUpgrade(request) ?? xrpcReply(426, 'InvalidRequest', `${SUBSCRIBE_EVENTS_NSID} is a subscription: connect with a WebSocket (ws:// or wss://)`),
  };

  return {
    http(request) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        // A 405 names the methods that are served (RFC 9110 15.5.6).
        const refused = text(405, 'only GET is served here');
        return { ...refused, headers: { ...refused.headers, allow: 'GET, HEAD' } };
      }
      return isHttpPath(request.path) ? routes[request.path](request) : text(404, 'not found');
    },

    upgrade(request) {
      return refuseBadHandshake(request) ?? (request.path === SUBSCRIBE_EVENTS_PATH ? upgradeV2(request) : upgradeV1(request));
    },

    // Counted once open, not when admitted: the socket library may still refuse a handshake
    // (ws answers its own 400 to a malformed Sec-WebSocket-Protocol), and then there is no subscriber to leave.
    open: (sink, connection) => {
      metrics.connections.inc({ wire: connection.admission.wire.name, result: 'accepted' });
      connection.subscriber = hub.open(connection.admission, sink);
    },
    // The transports call these only after open.
    message: ({ subscriber }, data, binary) => subscriber && hub.message(subscriber, data, binary),
    drain: ({ subscriber }) => subscriber && hub.drain(subscriber),
    pong: ({ subscriber }) => subscriber && hub.pong(subscriber),
    close: ({ subscriber }, cause) => subscriber && (cause === 'stalled' ? hub.cutStalled(subscriber) : hub.closed(subscriber, cause)),
  };
}

/**
 * The /subscribe query: Jetstream v1's parameters, plus contrail's wantedKinds, heartbeat and
 * backfill. Every key may repeat; unknown keys are ignored.
 */
export function parseSubscribeQuery(request: HttpRequestInfo, backfillAvailable = false) {
  const query = new URLSearchParams(request.query);
  const compress = booleanParam(query, 'compress') || (request.header('socket-encoding') ?? '').includes('zstd');
  const common = parseCommonQuery(query);
  // Not a v1 parameter, so a value that is neither true nor false is an error, not "false".
  const backfillText = query.get('backfill') || undefined;
  const backfill = parseBackfill(backfillText === 'true' || (backfillText !== 'false' && backfillText), common.filter, backfillAvailable);
  return { ...common, compress, requireHello: booleanParam(query, 'requireHello'), backfill };
}

/**
 * The query of /stream and /stream.ndjson: /subscribe's filters, cursor and heartbeat, plus
 * `limit`. A Last-Event-ID header (EventSource sends it when it reconnects) is the cursor and
 * wins over the URL's, which is where the stream first started. What only a WebSocket can do
 * (compression, options_update) is refused rather than silently ignored.
 */
export function parseStreamQuery(request: HttpRequestInfo) {
  const query = new URLSearchParams(request.query);
  for (const name of ['compress', 'requireHello']) {
    if (booleanParam(query, name)) throw new OptionError(`${name}=true needs a WebSocket: use ${SUBSCRIBE_PATH}`);
  }
  // contrail's own parameter, read strictly as on /subscribe: anything but false (or empty, which is
  // absent, as every parameter's empty value is) asks for a backfill.
  const backfill = query.get('backfill') ?? '';
  if (backfill !== '' && backfill !== 'false') throw new OptionError(`backfill=${backfill}: backfill needs a WebSocket: use ${SUBSCRIBE_PATH}`);
  const common = parseCommonQuery(query);
  const lastEventId = request.header('last-event-id');
  const cursor = lastEventId ? parseCursor('Last-Event-ID', lastEventId) : common.cursor;
  const limitText = query.get('limit') ?? '';
  if (limitText !== '' && !/^[1-9]\d{0,15}$/.test(limitText)) {
    throw new OptionError(`limit: ${JSON.stringify(limitText)} is not a whole number of events >= 1`);
  }
  return { ...common, cursor, limit: limitText === '' ? undefined : Number(limitText) };
}

function parseCommonQuery(query: URLSearchParams) {
  const filter = parseFilter({
    wantedCollections: query.getAll('wantedCollections'),
    wantedDids: query.getAll('wantedDids'),
    wantedKinds: query.getAll('wantedKinds'),
    maxMessageSizeBytes: queryMaxMessageBytes(query.get('maxMessageSizeBytes')),
  });
  const cursorText = query.get('cursor') ?? '';
  const cursor = cursorText === '' ? undefined : parseCursor('cursor', cursorText);
  return { filter, cursor, heartbeatMs: parseHeartbeat(query.get('heartbeat') ?? '') };
}

/** As Jetstream v1 reads it (strconv.ParseInt): a Go int64, or a 400. */
function parseCursor(name: string, text: string): number {
  const cursor = goInt64(text);
  if (cursor === undefined) throw new OptionError(`${name}: ${JSON.stringify(text)} is not a 64-bit integer (unix microseconds, e.g. a time_us you received)`);
  return Number(cursor);
}

const HEARTBEAT_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000 };

/** `heartbeat=30s` (or 30, in seconds; ms and m units too), from 1s to 60m: 0 = off, the default. */
function parseHeartbeat(text: string): number {
  if (text === '') return 0;
  const match = /^(\d{1,7})(ms|s|m)?$/.exec(text);
  const unitMs = HEARTBEAT_UNITS[match?.[2] ?? 's'];
  const ms = match && unitMs !== undefined ? Number(match[1]) * unitMs : NaN;
  if (!(ms >= 1_000 && ms <= 3_600_000)) throw new OptionError(`heartbeat: ${JSON.stringify(text)} must be a duration from 1s to 60m, e.g. 30s`);
  return ms;
}

/** An empty buffer has no oldest or newest event: the keys stay, as null (JSON drops undefined). */
function spanWithNulls(span: StoreSpan) {
  return { ...span, oldestTimeUs: span.oldestTimeUs ?? null, newestTimeUs: span.newestTimeUs ?? null };
}

function shownCursor(cursor: UpstreamCursor | undefined): UpstreamCursor | null {
  return cursor ? { url: redactUrl(cursor.url), seq: cursor.seq } : null;
}

/**
 * The client's address: the socket's, or behind `trustedProxies` proxies that each append the
 * address they saw to X-Forwarded-For, the one the outermost of them appended (that many hops from
 * the right). Anything left of it was written by the client and may be forged.
 */
export function clientAddress(request: HttpRequestInfo, trustedProxies: number): string {
  if (trustedProxies === 0) return request.remoteAddress;
  const hops = (request.header('x-forwarded-for') ?? '').split(',').map((hop) => hop.trim());
  const appended = hops.slice(-trustedProxies).filter((hop) => hop !== '');
  return appended[0] ?? request.remoteAddress;
}

/** As in Jetstream v1: exactly `true` is true, anything else false, so a client written against v1 gets the same frames. */
function booleanParam(query: URLSearchParams, name: string): boolean {
  return query.get(name) === 'true';
}

function text(status: number, body: string): HttpReply {
  return { status, headers: { ...CORS, 'content-type': 'text/plain; charset=utf-8' }, body: body + '\n' };
}

const API_SUMMARY = `contrail: a Jetstream-compatible JSON firehose gateway for the AT Protocol.

  WebSocket  /subscribe?wantedCollections=app.bsky.feed.post   record-level JSON events (Jetstream v1 wire)
             parameters: wantedCollections, wantedDids, wantedKinds (add sync for #sync events), cursor,
             compress, requireHello, maxMessageSizeBytes, heartbeat (e.g. 30s),
             backfill=true (with wantedDids: each repo's records first, then its live events)
  GET        /stream?wantedCollections=app.bsky.feed.post      the same events as Server-Sent Events
             (id: = time_us; EventSource resumes by itself), for browsers
  GET        /stream.ndjson?wantedCollections=app.bsky.feed.post&limit=10   one JSON event per line, for curl
             parameters of both: wantedCollections, wantedDids, wantedKinds, cursor, maxMessageSizeBytes,
             heartbeat, limit
  WebSocket  /xrpc/network.bsky.jetstream.subscribeEvents?collections=app.bsky.feed.post   the same events, Jetstream v2 wire
             parameters: kinds, dids, collections, cursor (seq, or unix µs), maxMessageSizeBytes, zstdDictionary
             both: permessage-deflate when the client offers it (browsers do)
  GET        /dictionary   the zstd dictionary for compress=true (its ID is in X-Zstd-Dictionary-Id)
  GET        /xrpc/network.bsky.jetstream.getZstdDictionary   the same, for v2's zstdDictionary
  GET        /             in a browser: the live explorer
  GET        /stats        the replay buffer's span and size
  GET        /health       the process is up
  GET        /ready        the upstream is connected and the store is writable

Docs: the README of the contrail repository (API reference, operations guide); the wires are Jetstream's,
https://github.com/bluesky-social/jetstream (v1 README; v2 lexicon network.bsky.jetstream.subscribeEvents).`;
