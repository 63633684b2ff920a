import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { listenError } from './listen-error.ts';

/** Prometheus scrapes GET /metrics here, on its own port so it can stay private. */
export async function startMetricsEndpoint(registry: Registry, host: string, port: number): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    // The path only: Prometheus may add a query (a scrape job's params).
    if ((req.url ?? '').split('?', 1)[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      // A collector that throws must cost one scrape, not the process.
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError('--metrics-port', host, port, err)));
    server.listen(port, host, () => resolve());
  });
  return { port: (server.address() as { port: number }).port, server };
}
