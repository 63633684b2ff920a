/**
 * A TCP proxy on 127.0.0.1 that hands the server's bytes to the client at a fixed rate: a peer
 * that reads slowly, as the server sees it (its send buffer fills at the speed the proxy reads).
 * A reset from the server reaches the client as a reset; a clean end is passed on once every
 * byte before it has been forwarded.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

const TICK_MS = 50;

export class ThrottledProxy {
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, bytesPerSecond: number): Promise<ThrottledProxy> {
    let proxy: ThrottledProxy | undefined;
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        proxy!.#sockets.add(socket);
        socket.on('close', () => proxy!.#sockets.delete(socket));
      }
      client.pipe(upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.resetAndDestroy());
      upstream.pause();
      let budget = 0;
      const timer = setInterval(() => {
        budget = Math.min(budget + (bytesPerSecond * TICK_MS) / 1000, bytesPerSecond);
        while (budget >= 1 && upstream.readableLength > 0) {
          const chunk: Buffer | null = upstream.read(Math.min(Math.floor(budget), upstream.readableLength));
          if (!chunk) break;
          budget -= chunk.byteLength;
          client.write(chunk);
        }
        // read(0) asks the socket to refill its buffer from the kernel, up to its high-water mark.
        upstream.read(0);
      }, TICK_MS);
      upstream.on('end', () => client.end());
      upstream.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new ThrottledProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
