/**
 * A scripted subscribeRepos server on 127.0.0.1: it keeps the frames pushed to it, and serves
 * each connection the frames after its `?cursor=` (all of them for cursor 0), then new ones as
 * they are pushed. A cursor above its newest seq gets a FutureCursor error frame and a close,
 * as a real relay does. Tests use it to script upstream behaviour, including abrupt closes.
 */
import { once } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorFrame } from './frames.ts';
import { waitUntil } from './poll.ts';

export interface RelayFrame {
  /** The frame's seq, or undefined for frames that carry none (#info, errors, junk). */
  seq?: number;
  bytes: Uint8Array;
}

export class FakeRelay {
  readonly frames: RelayFrame[] = [];
  readonly cursors: Array<number | undefined> = [];
  readonly #server: WebSocketServer;
  readonly #clients = new Set<WebSocket>();
  #port = 0;
  #pings = 0;

  private constructor(server: WebSocketServer) {
    this.#server = server;
    server.on('connection', (socket, request) => this.#accept(socket, request.url ?? '/'));
  }

  static async start(): Promise<FakeRelay> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    const relay = new FakeRelay(server);
    relay.#port = (server.address() as { port: number }).port;
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#port}/xrpc/com.atproto.sync.subscribeRepos`;
  }

  get connections(): number {
    return this.#clients.size;
  }

  /** WebSocket pings received from clients (each answered with a pong, as ws does). */
  get pings(): number {
    return this.#pings;
  }

  /** Appends a frame and sends it to every connected client. */
  push(frame: RelayFrame): void {
    this.frames.push(frame);
    for (const client of this.#clients) client.send(frame.bytes);
  }

  /** Sends a text message to every connected client (a relay never should; kept out of the backlog). */
  pushText(text: string): void {
    for (const client of this.#clients) client.send(text);
  }

  /** Resolves once `count` connections have been made in total. */
  async waitForConnections(count: number, timeoutMs = 10_000): Promise<void> {
    await waitUntil(() => this.cursors.length >= count, `${count} connections to the relay (it saw ${this.cursors.length})`, timeoutMs);
  }

  /** Drops every client's TCP connection without a close frame. */
  dropClients(): void {
    for (const client of this.#clients) client.terminate();
  }

  async stop(): Promise<void> {
    this.dropClients();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #accept(socket: WebSocket, url: string): void {
    const cursorText = new URL(url, 'http://relay').searchParams.get('cursor');
    const cursor = cursorText === null ? undefined : Number(cursorText);
    this.cursors.push(cursor);
    const newest = this.frames.reduce((max, f) => (f.seq !== undefined && f.seq > max ? f.seq : max), 0);
    if (cursor !== undefined && cursor > newest) {
      socket.send(errorFrame('FutureCursor', 'Cursor in the future.'));
      socket.close();
      return;
    }
    this.#clients.add(socket);
    socket.on('close', () => this.#clients.delete(socket));
    socket.on('ping', () => this.#pings++);
    socket.on('error', () => socket.terminate());
    if (cursor === undefined) return;
    // Backlog: everything after the cursor, including seq-less frames in between.
    let replaying = false;
    for (const frame of this.frames) {
      if (frame.seq !== undefined) replaying = frame.seq > cursor;
      if (replaying) socket.send(frame.bytes);
    }
  }
}

/**
 * A relay on 127.0.0.1 that accepts the WebSocket and then never says anything, pongs included:
 * its subscribeRepos URL, and the server (its connections in `server.clients`), closed with its
 * connections by the test's cleanup, `defer`.
 */
export async function startMuteRelay(defer: (step: () => unknown) => void): Promise<{ server: WebSocketServer; url: string }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => {
    for (const client of server.clients) client.terminate();
  });
  return { server, url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos` };
}
