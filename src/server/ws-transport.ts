import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  MAX_CLIENT_MESSAGE_BYTES,
  STATUS_TEXT,
  WEBSOCKET_PATHS,
  type ClientSocket,
  type HttpReply,
  type HttpRequestInfo,
  type SocketHandler,
  type Transport,
} from './transport.ts';
import { compressedFrameHeader, deflateMessage } from './deflate.ts';

/** The portable transport: node:http and the `ws` package, for Node versions uWS has no build for. */
export class WsTransport<Session> implements Transport {
  readonly name = 'ws';
  readonly #server: Server;
  /** The subprotocol each accepted upgrade answers with, read by handleProtocols during handleUpgrade. */
  readonly #protocols = new WeakMap<IncomingMessage, string>();
  readonly #wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_CLIENT_MESSAGE_BYTES,
    // Negotiated here, sent by deflate.ts: no context takeover, so every message is deflated on
    // its own, once for all sockets. Whether a connection gets it is decided per upgrade.
    perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true },
    handleProtocols: (_offered, req) => this.#protocols.get(req) ?? false,
  });

  constructor(handler: SocketHandler<Session>) {
    this.#server = createServer((req, res) => {
      const reply = handler.http(requestInfo(req));
      res.writeHead(reply.status, reply.headers);
      res.end(req.method === 'HEAD' ? undefined : reply.body);
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const info = requestInfo(req);
      if (!WEBSOCKET_PATHS.includes(info.path)) {
        writeRawReply(socket, handler.http(info));
        return;
      }
      const decision = handler.upgrade(info);
      if ('refuse' in decision) {
        writeRawReply(socket, decision.refuse);
        return;
      }
      const session = decision.accept;
      // Declining deflate = not seeing the offer; ws then answers without the extension. Offers
      // that cap the server's window are declined too: the shared deflate uses the full window.
      const offer = req.headers['sec-websocket-extensions'] ?? '';
      if (!decision.deflate || /server_max_window_bits/i.test(offer)) delete req.headers['sec-websocket-extensions'];
      if (decision.protocol) this.#protocols.set(req, decision.protocol);
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const client = wrapSocket(ws, socket);
        ws.on('message', (data: Buffer, isBinary: boolean) => handler.message(session, data, isBinary));
        ws.on('pong', () => handler.pong(session));
        ws.on('close', () => handler.close(session));
        ws.on('error', () => ws.terminate());
        socket.on('drain', () => handler.drain(session));
        handler.open(client, session);
      });
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as { port: number }).port);
      });
    });
  }

  stopListening(): void {
    this.#server.close();
    this.#server.closeIdleConnections();
  }
}

function wrapSocket(ws: WebSocket, socket: Duplex): ClientSocket {
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

function requestInfo(req: IncomingMessage): HttpRequestInfo {
  const url = req.url ?? '/';
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

/** An HTTP answer written on the raw socket of a refused upgrade. */
function writeRawReply(socket: Duplex, reply: HttpReply): void {
  const body = Buffer.from(reply.body);
  const headers = { 'content-type': 'text/plain; charset=utf-8', ...reply.headers, 'content-length': String(body.byteLength), connection: 'close' };
  const head = [`HTTP/1.1 ${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  socket.end(Buffer.concat([Buffer.from(head + '\r\n\r\n'), body]));
}
