import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { HttpResponse, TemplatedApp, WebSocket as UwsSocket, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import {
  MAX_CLIENT_MESSAGE_BYTES,
  STATUS_TEXT,
  SUBSCRIBE_PATH,
  type ClientSocket,
  type HttpReply,
  type HttpRequestInfo,
  type SocketHandler,
  type Transport,
} from './transport.ts';

type Uws = typeof import('@trufflesuite/uws-js-unofficial');

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

type UwsClient = ClientSocket & { closed: boolean };

interface SocketData<Session> {
  session: Session;
  client?: UwsClient;
}

const SEND_BUFFER_LIMIT = 64 * 1024 * 1024;

const SHUTTING_DOWN: HttpReply = { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'shutting down\n' };

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
    this.#app.ws<SocketData<Session>>(SUBSCRIBE_PATH, {
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
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const decision = handler.upgrade(info);
        if ('refuse' in decision) {
          writeReply(res, decision.refuse);
          return;
        }
        res.cork(() => res.upgrade<SocketData<Session>>({ session: decision.accept }, key, protocol, extensions, context));
      },
      open: (ws) => {
        const data = ws.getUserData();
        data.client = wrapSocket(ws);
        handler.open(data.client, data.session);
      },
      message: (ws, message, isBinary) => handler.message(ws.getUserData().session, new Uint8Array(message), isBinary),
      drain: (ws) => handler.drain(ws.getUserData().session),
      pong: (ws) => handler.pong(ws.getUserData().session),
      close: (ws) => {
        const data = ws.getUserData();
        if (data.client) data.client.closed = true;
        handler.close(data.session);
      },
    });
    this.#app.any('/*', (res, req) => {
      if (this.#stopped) {
        writeReply(res, SHUTTING_DOWN, true);
        return;
      }
      const info = requestInfo(res, req.getMethod().toUpperCase(), req.getUrl(), req.getQuery() ?? '', headersOf(req));
      writeReply(res, handler.http(info));
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#app.listen(host, port, (token) => {
        if (!token) {
          reject(new Error(`uWebSockets.js could not listen on ${host}:${port}`));
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
    send: (data: Uint8Array, binary: boolean) => void ws.send(data, binary),
    bufferedAmount: () => ws.getBufferedAmount(),
    cork: (fn: () => void) => void ws.cork(fn),
    ping: () => void ws.ping(),
    // uWS calls the close handler synchronously; after it the socket must not be touched.
    close: (code: number, reason: string) => {
      if (!client.closed) ws.end(code, reason);
    },
    terminate: () => {
      if (!client.closed) ws.close();
    },
  };
  return client;
}

function headersOf(req: { forEach(cb: (key: string, value: string) => void): void }): Map<string, string> {
  const headers = new Map<string, string>();
  req.forEach((key, value) => headers.set(key, value));
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

function writeReply(res: HttpResponse, reply: HttpReply, closeConnection = false): void {
  res.cork(() => {
    res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`.trimEnd());
    for (const [key, value] of Object.entries(reply.headers ?? {})) res.writeHeader(key, value);
    res.end(reply.body, closeConnection);
  });
}
