import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * An HTTP server on 127.0.0.1 (the OS picks the port) answering with `handler`, for one test:
 * closed after it, open connections and all.
 */
export async function localHttpServer(t: TestContext, handler: RequestListener): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Holds answers back: `passed` waits while the gate is stalled; stall() returns what opens it again. */
export class Gate {
  #open: Promise<void> = Promise.resolve();

  get passed(): Promise<void> {
    return this.#open;
  }

  stall(): () => void {
    let open!: () => void;
    this.#open = new Promise((resolve) => (open = resolve));
    return open;
  }
}
