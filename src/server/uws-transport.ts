import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { HttpResponse, TemplatedApp, WebSocketBehavior, WebSocket as UwsSocket, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import {
  CLOSE_TIMEOUT_MS,
  MAX_CLIENT_MESSAGE_BYTES,
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
import { listenError, probeListen } from './listen-error.ts';
import { TAKEN_DEFLATE_OFFER } from './deflate-offer.ts';

type Uws = typeof import('@trufflesuite/uws-js-unofficial');
/** ListenOptions.LIBUS_LISTEN_EXCLUSIVE_PORT; its typings list it only for listen(port, options, cb), the native code takes it after a host too. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

/**
 * Loads uWebSockets.js if a native binary exists for this Node ABI. The npm build silently
 * swaps in a slow JavaScript shim when the binary does not load; we refuse that and say why.
 */
export async function loadUws(): Promise<{ uws: Uws } | { unavailable: string }> {
  const require = createRequire(import.meta.url);
  let packageDir: string;
  try {
    packageDir = dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
  } catch {
    return { unavailable: 'the @trufflesuite/uws-js-unofficial package is not installed' };
  }
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  if (!existsSync(join(packageDir, 'binaries', binary))) {
    return { unavailable: `no native build for Node ${process.version} (${binary}); it has builds for Node 16, 18 and 20 only` };
  }
  const { default: uws } = (await import('@trufflesuite/uws-js-unofficial')) as { default: Uws };
  if (!Function.prototype.toString.call(uws.App).includes('[native code]')) {
    return { unavailable: 'the native binary failed to load and the package fell back to its JavaScript shim' };
  }
  return { uws };
}

type UwsClient = ClientSocket & {
  closed: boolean;
  /** A close waiting for the send buffer to drain (uWS's end() would discard what is queued). */
  closing?: { code: number; reason: string; timer: NodeJS.Timeout };
};

interface SocketData<Session> {
  session: Session;
  client?: UwsClient;
}

const SEND_BUFFER_LIMIT = 64 * 1024 * 1024;


export class UwsTransport<Session> implements Transport {
  readonly name = 'uws';
  readonly #app: TemplatedApp;
  #listenSocket: us_listen_socket | undefined;
  /** uWS keeps serving kept-alive HTTP connections after its listen socket closes; we refuse them. */
  #stopped = false;

  constructor(
    private readonly uws: Uws,
    handler: SocketHandler<Session>,
  ) {
    this.#app = uws.App();
    const behavior: WebSocketBehavior<SocketData<Session>> = {
      // Shared (no context takeover): no window memory per socket; each message is deflated
      // on its own. Whether a connection gets it is decided per upgrade (see routes.ts).
      compression: uws.SHARED_COMPRESSOR | uws.SHARED_DECOMPRESSOR,
      maxPayloadLength: MAX_CLIENT_MESSAGE_BYTES,
      // Our own high-water mark decides when to stop sending; this only has to be above it.
      maxBackpressure: SEND_BUFFER_LIMIT,
      closeOnBackpressureLimit: 0,
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => {
        if (this.#stopped) {
          writeReply(res, SHUTTING_DOWN, true);
          return;
        }
        const info = requestInfo(res, req.getMethod().toUpperCase(), req.getUrl(), req.getQuery() ?? '', headersOf(req));
        const key = req.getHeader('sec-websocket-key');
        const decision = handler.upgrade(info);
        if ('refuse' in decision) {
          writeReply(res, decision.refuse);
          return;
        }
        // uWS sees the offer taken, or none, never the client's header, of which it would take
        // offers RFC 7692 says to decline (deflate-offer.ts).
        const answer = { extensions: decision.deflate ? TAKEN_DEFLATE_OFFER : '', protocol: decision.protocol ?? '' };
        res.cork(() => res.upgrade<SocketData<Session>>({ session: decision.accept }, key, answer.protocol, answer.extensions, context));
      },
      open: (ws) => {
        const data = ws.getUserData();
        data.client = wrapSocket(ws);
        handler.open(data.client, data.session);
      },
      message: (ws, message, isBinary) => handler.message(ws.getUserData().session, new Uint8Array(message), isBinary),
      drain: (ws) => {
        const { client, session } = ws.getUserData();
        if (client?.closing) finishClosing(ws, client);
        else handler.drain(session);
      },
      pong: (ws) => handler.pong(ws.getUserData().session),
      // uWS drops a socket whose client broke a rule (a message over maxPayloadLength, text that
      // is not UTF-8) with 1006 and says why in the message; a peer that went away leaves it empty.
      close: (ws, code, message) => {
        const data = ws.getUserData();
        if (data.client) {
          data.client.closed = true;
          clearTimeout(data.client.closing?.timer);
        }
        handler.close(data.session, code === 1006 && message.byteLength > 0 ? 'bad_message' : undefined);
      },
    };
    for (const path of WEBSOCKET_PATHS) this.#app.ws<SocketData<Session>>(path, behavior);
    this.#app.any('/*', (res, req) => {
      if (this.#stopped) {
        writeReply(res, SHUTTING_DOWN, true);
        return;
      }
      const info = requestInfo(res, req.getMethod().toUpperCase(), req.getUrl(), req.getQuery() ?? '', headersOf(req));
      const reply = handler.http(info);
      if ('stream' in reply) startStream(res, reply.stream, handler);
      else writeReply(res, reply, false, info.method === 'HEAD');
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      // Exclusive: uWS's default is SO_REUSEPORT, which lets a second contrail share the port.
      const listen = this.#app.listen as unknown as (host: string, port: number, options: number, cb: (token: us_listen_socket | false) => void) => void;
      listen.call(this.#app, host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (token) => {
        if (!token) {
          void probeListen(host, port).then((cause) => reject(listenError('--port', host, port, cause)));
          return;
        }
        this.#listenSocket = token;
        resolve(this.uws.us_socket_local_port(token as never));
      });
    });
  }

  stopListening(): void {
    this.#stopped = true;
    if (this.#listenSocket) this.uws.us_listen_socket_close(this.#listenSocket);
    this.#listenSocket = undefined;
  }
}

function wrapSocket<Session>(ws: UwsSocket<SocketData<Session>>): UwsClient {
  const client: UwsClient = {
    closed: false,
    // compress applies only where permessage-deflate was negotiated.
    send: (data: Uint8Array, binary: boolean) => void ws.send(data, binary, true),
    // uWS writes what it can and copies the rest into its own buffer (deflating first, when negotiated).
    copiesOnSend: true,
    bufferedAmount: () => ws.getBufferedAmount(),
    cork: (fn: () => void) => void ws.cork(fn),
    ping: () => void ws.ping(),
    // uWS's end() drops whatever is still queued and cuts the connection, so a slow reader
    // would lose its last messages and the close frame: end() waits until the queue is empty.
    close: (code: number, reason: string) => {
      if (client.closed || client.closing) return;
      const timer = setTimeout(() => client.terminate(), CLOSE_TIMEOUT_MS);
      timer.unref();
      client.closing = { code, reason, timer };
      finishClosing(ws, client);
    },
    terminate: () => {
      if (!client.closed) ws.close();
    },
  };
  return client;
}

/** Sends the pending close frame once nothing else is queued. */
function finishClosing<Session>(ws: UwsSocket<SocketData<Session>>, client: UwsClient): void {
  if (client.closed || !client.closing || ws.getBufferedAmount() > 0) return;
  clearTimeout(client.closing.timer);
  // uWS calls the close handler synchronously; after it the socket must not be touched.
  ws.end(client.closing.code, client.closing.reason);
}

/**
 * The soonest uWS's HTTP idle timeout (10 s, armed by a write the socket could not take) cuts a
 * response: uSockets checks timeouts every 4 s, so 10 s is 3 of its ticks, at least 8 s; a margin under it.
 */
const UWS_IDLE_CUT_EARLIEST_MS = 7_000;

/**
 * A streaming response (SSE, NDJSON) as a subscriber's sink. uWS does not report how much of
 * an HTTP response it holds: a write returning false means the kernel's buffer is full and uWS
 * kept the rest, so the sink reports itself full until uWS says the socket is writable again.
 * The hub then stops writing, which bounds what uWS holds to about one message.
 */
function startStream<Session>(res: HttpResponse, stream: HttpStreamStart<Session>, handler: SocketHandler<Session>): void {
  let ended = false;
  let full = false;
  /** When a write last found the socket full (performance.now()): uWS starts its idle timeout then. */
  let fullAtMs = 0;
  const end = (stalled = false) => {
    if (ended) return;
    ended = true;
    handler.close(stream.session, stalled ? 'stalled' : undefined);
  };
  // The peer left, or uWS's own HTTP idle timeout cut a response that could send nothing for ~10 s:
  // uWS says which to neither. Bytes held for the peer since before the timeout's earliest cut mean
  // a reader that stopped reading; held for less, a peer that left while behind (mid-replay, a slow
  // link), as readers do.
  res.onAborted(() => end(full && performance.now() - fullAtMs >= UWS_IDLE_CUT_EARLIEST_MS));
  res.onWritable(() => {
    full = false;
    // After this handler uWS writes out what it holds; the pump writes behind it, next turn.
    setImmediate(() => {
      if (!ended) handler.drain(stream.session);
    });
    return true;
  });
  res.cork(() => {
    res.writeStatus('200 OK');
    for (const [key, value] of Object.entries(stream.headers)) res.writeHeader(key, value);
  });
  handler.open(
    {
      // Corked here too: heartbeats and goodbyes are sent outside the hub's batches.
      send: (data) => {
        if (ended) return;
        res.cork(() => {
          if (res.write(data)) return;
          full = true;
          fullAtMs = performance.now();
        });
      },
      // Like a WebSocket's send, write() keeps a copy of what the socket did not take.
      copiesOnSend: true,
      bufferedAmount: () => (full ? Number.MAX_SAFE_INTEGER : 0),
      cork: (fn) => void res.cork(fn),
      close: () => {
        if (ended) return;
        res.cork(() => res.end());
        end();
      },
      terminate: () => {
        if (ended) return;
        res.close();
        end();
      },
    },
    stream.session,
  );
}

/**
 * uWS hands each field line on its own; several lines of one field are one comma-joined list
 * (RFC 9110 §5.3), as node:http gives them to the ws transport, so the route reads every line.
 */
function headersOf(req: { forEach(cb: (key: string, value: string) => void): void }): Map<string, string> {
  const headers = new Map<string, string>();
  req.forEach((key, value) => {
    const earlier = headers.get(key);
    headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`);
  });
  return headers;
}

function requestInfo(res: HttpResponse, method: string, path: string, query: string, headers: Map<string, string>): HttpRequestInfo {
  return {
    method,
    path,
    query,
    header: (name) => headers.get(name),
    remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
  };
}

/** A HEAD answer carries the GET's Content-Length but no body (a body would desynchronise keep-alive). */
function writeReply(res: HttpResponse, reply: HttpReply, closeConnection = false, head = false): void {
  res.cork(() => {
    res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`.trimEnd());
    for (const [key, value] of Object.entries(reply.headers ?? {})) res.writeHeader(key, value);
    if (head) {
      // This build's endWithoutBody(length) never ends the response: the length goes in by hand.
      res.writeHeader('content-length', String(Buffer.byteLength(reply.body)));
      res.endWithoutBody();
    } else {
      res.end(reply.body, closeConnection);
    }
  });
}
