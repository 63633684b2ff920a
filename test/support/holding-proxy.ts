/**
 * A TCP proxy on 127.0.0.1 that can hold back what the server sends: while held, the client's
 * bytes still reach the server, and the server's answers wait in the proxy until release(). A
 * cluster node behind it falls behind its stream on demand (a replication lag that lasts as long
 * as a test needs), without stopping the node's process.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class HoldingProxy {
  readonly #sockets = new Set<Socket>();
  #held: Array<() => void> | undefined;

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<HoldingProxy> {
    let proxy: HoldingProxy | undefined;
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        proxy!.#sockets.add(socket);
        socket.on('close', () => proxy!.#sockets.delete(socket));
        socket.on('error', () => (socket === client ? upstream : client).destroy());
      }
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        const forward = () => client.write(chunk);
        if (proxy!.#held) proxy!.#held.push(forward);
        else forward();
      });
      upstream.on('end', () => client.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new HoldingProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** From now on the server's bytes wait in the proxy. */
  hold(): void {
    this.#held ??= [];
  }

  /** Sends on everything held, in order, and forwards as it comes again. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const forward of held) forward();
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
