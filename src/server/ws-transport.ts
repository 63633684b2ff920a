import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CLOSE_TIMEOUT_MS,
  MAX_CLIENT_MESSAGE_BYTES,
  MAX_REQUEST_HEAD_BYTES,
  SHUTTING_DOWN,
  STATUS_TEXT,
  WEBSOCKET_PATHS,
  type ClientSocket,
  type HttpReply,
  type HttpRequestInfo,
  type HttpStreamStart,
  type SocketHandler,
  type Transport,
} from './transport.ts';
import { compressedFrameHeader, deflateMessage } from './deflate.ts';
import { TAKEN_DEFLATE_OFFER } from './deflate-offer.ts';
import { listenError } from './listen-error.ts';
import { asksForWebSocket } from './websocket-handshake.ts';

/** The portable transport: node:http and the `ws` package, for Node versions uWS has no build for. */
export class WsTransport<Session> implements Transport {
  readonly name = 'ws';
  readonly #server: Server;
  /** The subprotocol each accepted upgrade answers with, read by handleProtocols during handleUpgrade. */
  readonly #protocols = new WeakMap<IncomingMessage, string>();
  /**
   * Set by stopListening: server.close() keeps a busy kept-alive connection open, and a request
   * on it (an EventSource reconnecting the moment its stream is ended) is answered 503, not served.
   */
  #stopped = false;
  readonly #wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_CLIENT_MESSAGE_BYTES,
    // Negotiated here, sent by deflate.ts: no context takeover, so every message is deflated on
    // its own, once for all sockets. Whether a connection gets it is decided per upgrade.
    perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true },
    handleProtocols: (_offered, req) => this.#protocols.get(req) ?? false,
  });

  /** @param closeTimeoutMs how long a peer the server ends (an HTTP stream, a refusal) gets to read what is queued (tests shorten it). */
  constructor(handler: SocketHandler<Session>, closeTimeoutMs = CLOSE_TIMEOUT_MS) {
    // Node's own answer to a request without Host has no reason; ours says what is missing.
    this.#server = createServer({ maxHeaderSize: MAX_REQUEST_HEAD_BYTES, requireHostHeader: false }, (req, res) => {
      if (this.#stopped) {
        res.writeHead(SHUTTING_DOWN.status, { ...SHUTTING_DOWN.headers, connection: 'close' });
        res.end(SHUTTING_DOWN.body);
        return;
      }
      const reply = missingHost(req) ?? handler.http(requestInfo(req));
      if ('stream' in reply) {
        startStream(res, reply.stream, handler, closeTimeoutMs);
        return;
      }
      // Content-Length always, so that HEAD reports the GET's length.
      res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) });
      res.end(req.method === 'HEAD' ? undefined : reply.body);
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      writeRawReply(socket, malformedRequest(err), closeTimeoutMs);
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // node:http hands every Upgrade here. One to another protocol than WebSocket (h2c: curl
      // --http2, Java's HttpClient) is ignored, as RFC 9110 section 7.8 lets a server, and as uWS
      // does: the request is read again without it, and answered over HTTP/1.1 like any other.
      if (!asksForWebSocket(req.headers.connection, req.headers.upgrade)) {
        socket.unshift(Buffer.concat([headWithoutUpgrade(req), head]));
        this.#server.emit('connection', socket);
        return;
      }
      // node:http hands an upgrade's socket over with none of its listeners, 'error' included: a
      // reset while a refusal below is still being written would be an uncaught exception. Once
      // accepted, `ws` adds its own handler, which destroys the socket as this one does.
      socket.on('error', () => socket.destroy());
      const refusal = this.#stopped ? SHUTTING_DOWN : missingHost(req);
      if (refusal) {
        writeRawReply(socket, refusal, closeTimeoutMs);
        return;
      }
      const info = requestInfo(req);
      // An upgrade is a GET (RFC 6455 section 4.1): another method gets what it gets without one, as on uWS.
      if (req.method !== 'GET' || !WEBSOCKET_PATHS.includes(info.path)) {
        const reply = handler.http(info);
        writeRawReply(socket, 'stream' in reply ? NOT_A_WEBSOCKET : reply, closeTimeoutMs, req.method === 'HEAD');
        return;
      }
      const decision = handler.upgrade(info);
      if ('refuse' in decision) {
        writeRawReply(socket, decision.refuse, closeTimeoutMs);
        return;
      }
      const session = decision.accept;
      // ws sees the offer taken, or none (declined: it answers without the extension), never the
      // client's header, over which it would refuse the upgrade (deflate-offer.ts).
      if (decision.deflate) req.headers['sec-websocket-extensions'] = TAKEN_DEFLATE_OFFER;
      else delete req.headers['sec-websocket-extensions'];
      if (decision.protocol) this.#protocols.set(req, decision.protocol);
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const client = wrapSocket(ws, socket);
        /** The peer broke a WebSocket rule: `ws` reads no further and closes (1009, 1007, 1002). */
        let brokeRule = false;
        ws.on('message', (data: Buffer, isBinary: boolean) => handler.message(session, data, isBinary));
        ws.on('pong', () => handler.pong(session));
        ws.on('close', () => handler.close(session, brokeRule ? 'bad_message' : undefined));
        // After an error `ws` closes the connection itself (with a close frame when the peer broke
        // a rule); terminating here could cut that frame off.
        ws.on('error', (err: Error & { code?: string }) => {
          if (err.code?.startsWith('WS_ERR_')) brokeRule = true;
        });
        socket.on('drain', () => handler.drain(session));
        handler.open(client, session);
      });
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException) => reject(listenError('--port', host, port, err));
      this.#server.once('error', fail);
      this.#server.listen(port, host, () => {
        this.#server.off('error', fail);
        resolve((this.#server.address() as { port: number }).port);
      });
    });
  }

  stopListening(): void {
    this.#stopped = true;
    this.#server.close();
    this.#server.closeIdleConnections();
  }
}

/** Reasons for the closes `ws` makes on its own, which it sends without one. */
const PROTOCOL_CLOSE_REASONS: Record<number, string> = {
  1002: 'WebSocket protocol error',
  1007: 'a text message was not valid UTF-8',
  1009: `a message was larger than ${MAX_CLIENT_MESSAGE_BYTES / 1024 / 1024} MB`,
};

function wrapSocket(ws: WebSocket, socket: Duplex): ClientSocket {
  // `ws` closes through this method when a message breaks a rule; an instance override is the
  // one place where its code can be given a reason.
  const closeWithReason = ws.close.bind(ws);
  ws.close = (code?: number, reason?: string | Buffer) => closeWithReason(code, reason ?? (code === undefined ? undefined : PROTOCOL_CLOSE_REASONS[code]));
  // ws never compresses here (compress: false), so its sender never queues and the frames
  // written directly to the socket stay in order with its own.
  const deflate = ws.extensions.includes('permessage-deflate');
  return {
    send: deflate
      ? (data, binary) => {
          const payload = deflateMessage(data);
          socket.write(compressedFrameHeader(payload.byteLength, binary));
          socket.write(payload);
        }
      : (data, binary) => ws.send(data, { binary, compress: false }),
    // A net.Socket emits 'drain' only after a write found it over its own high-water mark
    // (16 KiB). Below that, report nothing buffered: the hub must never wait for a drain
    // that will not come.
    bufferedAmount: () => (socket.writableNeedDrain ? ws.bufferedAmount : 0),
    cork: (fn) => {
      socket.cork();
      try {
        fn();
      } finally {
        socket.uncork();
      }
    },
    ping: () => ws.ping(),
    close: (code, reason) => ws.close(code, reason),
    terminate: () => ws.terminate(),
  };
}

const NOT_A_WEBSOCKET: HttpReply = { status: 400, body: 'this is a plain HTTP stream: request it without an Upgrade header\n' };

/** A streaming response (SSE, NDJSON) as a subscriber's sink. */
function startStream<Session>(res: ServerResponse, stream: HttpStreamStart<Session>, handler: SocketHandler<Session>, closeTimeoutMs: number): void {
  const { session } = stream;
  // Sent now, as uWS sends it: a client waiting for the response to start (fetch, curl) must
  // not wait for the first event a narrow filter matches.
  res.writeHead(200, stream.headers);
  res.flushHeaders();
  let closeTimer: NodeJS.Timeout | undefined;
  res.on('drain', () => handler.drain(session));
  res.on('close', () => {
    clearTimeout(closeTimer);
    handler.close(session);
  });
  res.on('error', () => res.destroy());
  handler.open(
    {
      send: (data) => void res.write(data),
      // As for WebSockets: the response emits 'drain' only after a write found it full.
      bufferedAmount: () => (res.writableNeedDrain ? res.writableLength : 0),
      cork: (fn) => {
        res.cork();
        try {
          fn();
        } finally {
          res.uncork();
        }
      },
      // end() waits for the peer to read what is queued: one that never does is cut after a while, as a WebSocket is.
      close: () => {
        res.end();
        closeTimer ??= setTimeout(() => res.destroy(), closeTimeoutMs).unref();
      },
      terminate: () => void res.destroy(),
    },
    session,
  );
}

/** The scheme and authority of a request target in absolute form (RFC 9112 section 3.2.2), which a server must accept. */
const ABSOLUTE_FORM = /^https?:\/\/[^/?]*/i;

function requestInfo(req: IncomingMessage): HttpRequestInfo {
  const target = req.url ?? '/';
  const authority = ABSOLUTE_FORM.exec(target);
  const rest = authority ? target.slice(authority[0].length) : target;
  const url = authority && !rest.startsWith('/') ? `/${rest}` : rest;
  const queryAt = url.indexOf('?');
  return {
    method: req.method ?? 'GET',
    path: queryAt < 0 ? url : url.slice(0, queryAt),
    query: queryAt < 0 ? '' : url.slice(queryAt + 1),
    header: (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    remoteAddress: req.socket.remoteAddress ?? '',
  };
}

/** The request's head as the client sent it, less its Upgrade header and the upgrade token of its Connection header. */
function headWithoutUpgrade(req: IncomingMessage): Buffer {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lowerName = name.toLowerCase();
    if (lowerName === 'upgrade') continue;
    if (lowerName === 'connection') {
      const options = value.split(',').map((option) => option.trim()).filter((option) => option !== '' && option.toLowerCase() !== 'upgrade');
      if (options.length > 0) lines.push(`${name}: ${options.join(', ')}`);
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  // node:http reads header bytes as latin1: written back the same way, they are the bytes sent.
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function missingHost(req: IncomingMessage): HttpReply | undefined {
  if (req.httpVersion !== '1.1' || req.headers.host !== undefined) return undefined;
  return { status: 400, body: 'bad request: HTTP/1.1 requires a Host header\n' };
}

/** What node:http's parser refused, said in words. */
function malformedRequest(err: NodeJS.ErrnoException & { reason?: string }): HttpReply {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return {
      status: 431,
      body: `request headers (the URL included) are over ${MAX_REQUEST_HEAD_BYTES / 1024 / 1024} MiB: send long wantedDids lists with options_update\n`,
    };
  }
  return { status: 400, body: `malformed HTTP request: ${err.reason ?? err.message} (${err.code})\n` };
}

/**
 * An HTTP answer written on the raw socket of a refused upgrade or a malformed request. end() waits
 * for the peer, which may neither read the answer nor close its side (node:http sets no timeout on
 * such a socket): after closeTimeoutMs, the deadline every other ending gets (a slow link reads
 * a few hundred bytes well within it), the socket is destroyed. The refusal was counted where it
 * was decided; the cut adds no count or log line, as a stream's or WebSocket's close timeout adds none.
 */
function writeRawReply(socket: Duplex, reply: HttpReply, closeTimeoutMs: number, headOnly = false): void {
  const body = Buffer.from(reply.body);
  const headers = { 'content-type': 'text/plain; charset=utf-8', ...reply.headers, 'content-length': String(body.byteLength), connection: 'close' };
  const head = [`HTTP/1.1 ${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  // A HEAD answer has the GET's Content-Length and no body.
  socket.end(Buffer.concat([Buffer.from(head + '\r\n\r\n'), headOnly ? Buffer.alloc(0) : body]));
  const deadline = setTimeout(() => socket.destroy(), closeTimeoutMs).unref();
  socket.once('close', () => clearTimeout(deadline));
}
