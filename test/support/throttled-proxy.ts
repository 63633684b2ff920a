/**
 * A TCP proxy on 127.0.0.1 that hands the server's bytes to the client slowly: a peer that reads
 * slowly, as the server sees it (its send buffer fills at the speed the proxy reads). Either at a
 * fixed rate (start), or metered (metered): only the bytes a test allowed, so that a reader keeps
 * to a set share of a stream the test makes however fast a loaded machine runs that stream.
 * A reset from the server reaches the client as a reset; a clean end is passed on once every
 * byte before it has been forwarded.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

const TICK_MS = 50;

/** How many bytes a connection may forward: refilled each tick, drawn from as it forwards. */
interface Budget {
  tick(): void;
  available(): number;
  spend(bytes: number): void;
}

export class ThrottledProxy {
  readonly #sockets = new Set<Socket>();
  /** Metered: bytes allowed and not forwarded yet, shared by the connections. */
  #allowed = 0;

  private constructor(readonly server: Server) {}

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Forwards at most bytesPerSecond to each client. */
  static start(targetPort: number, bytesPerSecond: number): Promise<ThrottledProxy> {
    return ThrottledProxy.#listen(targetPort, () => {
      let budget = 0;
      return {
        tick: () => (budget = Math.min(budget + (bytesPerSecond * TICK_MS) / 1000, bytesPerSecond)),
        available: () => budget,
        spend: (bytes) => (budget -= bytes),
      };
    });
  }

  /** Forwards only what allow() allowed. */
  static metered(targetPort: number): Promise<ThrottledProxy> {
    return ThrottledProxy.#listen(targetPort, (proxy) => ({
      tick: () => {},
      available: () => proxy.#allowed,
      spend: (bytes) => (proxy.#allowed -= bytes),
    }));
  }

  /** Metered: lets this many more bytes through. */
  allow(bytes: number): void {
    this.#allowed += bytes;
  }

  /** Metered: lets everything through from now on. */
  allowAll(): void {
    this.#allowed = Infinity;
  }

  static async #listen(targetPort: number, budgetFor: (proxy: ThrottledProxy) => Budget): Promise<ThrottledProxy> {
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        proxy.#sockets.add(socket);
        socket.on('close', () => proxy.#sockets.delete(socket));
      }
      client.pipe(upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.resetAndDestroy());
      upstream.pause();
      const budget = budgetFor(proxy);
      const timer = setInterval(() => {
        budget.tick();
        while (budget.available() >= 1 && upstream.readableLength > 0) {
          const chunk: Buffer | null = upstream.read(Math.min(Math.floor(budget.available()), upstream.readableLength));
          if (!chunk) break;
          budget.spend(chunk.byteLength);
          client.write(chunk);
        }
        // read(0) asks the socket to refill its buffer from the kernel, up to its high-water mark.
        upstream.read(0);
      }, TICK_MS);
      upstream.on('end', () => client.end());
      upstream.on('close', () => clearInterval(timer));
    });
    const proxy = new ThrottledProxy(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
