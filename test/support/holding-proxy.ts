/**
 * A TCP proxy on 127.0.0.1 that can hold back what crosses it, one way or both, while the
 * connections stay open and the processes at either end run on. hold('server'): the server's
 * answers wait in the proxy while the client's bytes still reach the server — a cluster node
 * falls behind its stream for as long as a test needs (a replication lag). hold('client',
 * 'server'): nothing crosses — a network partition, as a node sees one whose TCP connections
 * survive it. release() sends on everything held, in order, as TCP's retransmissions do once a
 * partition heals. reset() cuts every connection with an RST, as a peer or a load balancer that
 * drops connections abruptly does. A test can watch every chunk as it reaches the proxy (watch()),
 * held or not.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Which end sent a chunk. */
export type ProxySide = 'client' | 'server';

/** Sees each chunk as it reaches the proxy; `connection` numbers the proxied connections from 1. */
export type ProxyWatcher = (connection: number, from: ProxySide, chunk: Buffer) => void;

export class HoldingProxy {
  readonly #sockets = new Set<Socket>();
  /** The ends whose bytes wait in the proxy now. */
  readonly #holding = new Set<ProxySide>();
  #held: Array<() => void> = [];
  #watchers: ProxyWatcher[] = [];
  #connections = 0;

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<HoldingProxy> {
    let proxy: HoldingProxy | undefined;
    const server = createServer((client) => proxy!.#relay(client, connect(targetPort, '127.0.0.1')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new HoldingProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** A URL for a NATS client to connect through the proxy. */
  get natsUrl(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** From now on the bytes these ends send wait in the proxy (besides any held already). */
  hold(...from: ProxySide[]): void {
    for (const side of from) this.#holding.add(side);
  }

  /** Sends on everything held, in order, and forwards as it comes again. */
  release(): void {
    this.#holding.clear();
    const held = this.#held;
    this.#held = [];
    for (const forward of held) forward();
  }

  /**
   * Resets every connection through the proxy (an RST to both ends); what the proxy held for them is
   * lost with them. A reader that has paused its socket still takes what reaches it into the
   * socket's buffer, and sees an RST that comes after that at once; an RST (or a FIN) that reaches
   * it right behind bytes still in the kernel is seen only once it reads again.
   */
  reset(): void {
    this.#held = [];
    for (const socket of this.#sockets) socket.resetAndDestroy();
  }

  watch(watcher: ProxyWatcher): void {
    this.#watchers.push(watcher);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  #relay(client: Socket, upstream: Socket): void {
    const connection = ++this.#connections;
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => (socket === client ? upstream : client).destroy());
    }
    const pass = (from: Socket, to: Socket, side: ProxySide) => {
      const send = (forward: () => void) => {
        if (this.#holding.has(side)) this.#held.push(forward);
        else forward();
      };
      from.on('data', (chunk: Buffer) => {
        for (const watcher of this.#watchers) watcher(connection, side, chunk);
        send(() => to.write(chunk));
      });
      from.on('end', () => send(() => to.end()));
    };
    pass(client, upstream, 'client');
    pass(upstream, client, 'server');
  }
}
