/**
 * The socket layer, behind one small interface so the rest of the server does not know
 * whether uWebSockets.js (uws-transport.ts, the fast path) or `ws` (ws-transport.ts, portable
 * to any Node version) carries the bytes.
 */

/** A plain HTTP answer. */
export interface HttpReply {
  status: number;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

export interface HttpRequestInfo {
  method: string;
  path: string;
  /** The raw query string, without the leading "?". */
  query: string;
  /** Lower-case header name → value. */
  header(name: string): string | undefined;
  remoteAddress: string;
}

/** One accepted WebSocket, as the subscriber logic sees it. */
export interface ClientSocket {
  /** Queues one message; never drops it (the caller watches bufferedAmount). */
  send(data: Uint8Array, binary: boolean): void;
  /** Bytes queued for this socket and not yet written to the network. */
  bufferedAmount(): number;
  /** Runs fn with writes batched into as few syscalls as possible. */
  cork(fn: () => void): void;
  ping(): void;
  /** Sends a close frame with this code and reason, then closes. */
  close(code: number, reason: string): void;
  /** Drops the connection without a close frame (for peers that stopped answering). */
  terminate(): void;
}

/** What the server does with connections; the transport calls these. */
export interface SocketHandler<Session> {
  /** Every plain HTTP request (and upgrades anywhere but the WebSocket path). */
  http(request: HttpRequestInfo): HttpReply;
  /**
   * Before the upgrade, on a WebSocket path: refuse with an HTTP reply, or accept with the new
   * session's state, whether to negotiate the client's permessage-deflate offer, and the
   * subprotocol to echo.
   */
  upgrade(request: HttpRequestInfo): { refuse: HttpReply } | UpgradeAccept<Session>;
  open(socket: ClientSocket, session: Session): void;
  message(session: Session, data: Uint8Array, binary: boolean): void;
  /** The socket's send buffer has drained below the transport's low-water mark. */
  drain(session: Session): void;
  pong(session: Session): void;
  close(session: Session): void;
}

export interface UpgradeAccept<Session> {
  accept: Session;
  /** Negotiate RFC 7692 permessage-deflate if the client offered it (false: decline the offer). */
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
