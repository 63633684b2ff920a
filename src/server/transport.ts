/**
 * The socket layer, behind one small interface so the rest of the server does not know
 * whether uWebSockets.js (uws-transport.ts, the fast path) or `ws` (ws-transport.ts, portable
 * to any Node version) carries the bytes.
 */

/**
 * How long a peer whose stream is being ended (a close frame, or an HTTP stream's end) gets to read
 * what is queued for it before the connection is cut, as `ws` gives a closing WebSocket; on the ws
 * transport, a connection refused with an HTTP answer gets as long.
 */
export const CLOSE_TIMEOUT_MS = 30_000;

/** A plain HTTP answer. */
export interface HttpReply {
  status: number;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

/** The answer to a request once the transport stopped listening (one on a connection kept alive from before). */
export const SHUTTING_DOWN: HttpReply = { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'shutting down\n' };

export interface HttpRequestInfo {
  method: string;
  path: string;
  /** The raw query string, without the leading "?". */
  query: string;
  /** Lower-case header name → value; a field sent on several lines is its values joined with ", " (RFC 9110 §5.3), on both transports. */
  header(name: string): string | undefined;
  remoteAddress: string;
}

/**
 * Where one subscriber's bytes go, as the subscriber logic sees it: an accepted WebSocket, or
 * a streaming HTTP response (SSE, NDJSON).
 */
export interface SubscriberSink {
  /** Queues one message; never drops it (the caller watches bufferedAmount). */
  send(data: Uint8Array, binary: boolean): void;
  /** send copies (or writes out) the bytes before it returns, keeping no reference to `data`: the caller may then reuse that memory. */
  readonly copiesOnSend?: boolean;
  /** Bytes queued and not yet written to the network; over the hub's mark, wait for drain. */
  bufferedAmount(): number;
  /** Runs fn with writes batched into as few syscalls as possible. */
  cork(fn: () => void): void;
  /** A WebSocket ping; absent on HTTP streams, which have none (a dead peer shows as a full buffer or a reset). */
  ping?(): void;
  /** Ends the stream: a close frame with this code and reason for WebSockets; the response's end for HTTP. */
  close(code: number, reason: string): void;
  /** Drops the connection without a goodbye (for peers that stopped answering). */
  terminate(): void;
}

/** One accepted WebSocket. */
export interface ClientSocket extends SubscriberSink {
  ping(): void;
}

/** A streaming HTTP answer: status 200 and these headers, then the session's events. */
export interface HttpStreamStart<Session> {
  headers: Record<string, string>;
  session: Session;
}

/** What the server does with connections; the transport calls these. */
export interface SocketHandler<Session> {
  /** Every plain HTTP request (and upgrades anywhere but the WebSocket paths); or a stream's start. */
  http(request: HttpRequestInfo): HttpReply | { stream: HttpStreamStart<Session> };
  /**
   * Before the upgrade, on a WebSocket path: refuse with an HTTP reply, or accept with the new
   * session's state, whether to negotiate the client's permessage-deflate offer, and the
   * subprotocol to echo.
   */
  upgrade(request: HttpRequestInfo): { refuse: HttpReply } | UpgradeAccept<Session>;
  /** A WebSocket was accepted, or a streaming HTTP response started. */
  open(sink: SubscriberSink, session: Session): void;
  message(session: Session, data: Uint8Array, binary: boolean): void;
  /** The send buffer has drained below the transport's low-water mark. */
  drain(session: Session): void;
  pong(session: Session): void;
  /**
   * The WebSocket or HTTP stream is gone, whichever side ended it. `cause`, when the transport
   * ended it by itself: 'stalled', cut while holding bytes the peer had not taken (uWS's HTTP idle
   * timeout); 'bad_message', closed because the client broke a WebSocket rule (a message over
   * MAX_CLIENT_MESSAGE_BYTES, a text message that is not UTF-8).
   */
  close(session: Session, cause?: 'stalled' | 'bad_message'): void;
}

export interface UpgradeAccept<Session> {
  accept: Session;
  /**
   * Negotiate RFC 7692 permessage-deflate: true only where the client made an offer the server takes
   * (deflate-offer.ts), so the subscriber counted as deflate is the one that gets it; false declines.
   */
  deflate: boolean;
  /** The Sec-WebSocket-Protocol to answer with, if any. */
  protocol?: string;
}

export interface Transport {
  readonly name: 'uws' | 'ws';
  /** Listens and resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting connections (existing ones stay until closed). */
  stopListening(): void;
}

export const SUBSCRIBE_PATH = '/subscribe';
/** Jetstream v2's stream (network.bsky.jetstream.subscribeEvents). */
export const SUBSCRIBE_EVENTS_PATH = '/xrpc/network.bsky.jetstream.subscribeEvents';
export const WEBSOCKET_PATHS: readonly string[] = [SUBSCRIBE_PATH, SUBSCRIBE_EVENTS_PATH];
/** Largest client message accepted (options_update with a long DID list). */
export const MAX_CLIENT_MESSAGE_BYTES = 10 * 1024 * 1024;
/**
 * Largest request line plus headers the `ws` transport reads: Jetstream v1's (Go's 1 MB default),
 * so a URL with 10,000 wantedDids fits. uWS has its own, smaller limit (see the README).
 */
export const MAX_REQUEST_HEAD_BYTES = 1024 * 1024;

export const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};
