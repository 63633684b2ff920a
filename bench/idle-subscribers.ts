/**
 * bench/idle-subscribers: the memory an idle, filtered subscriber costs the server. Each server
 * runs in its own process with `npm start`'s V8 flags, so its RSS is its own: contrail's
 * gateway (uWS, then ws) and, as peers, a bare uWebSockets.js app and a bare `ws` server that
 * only hold the same sockets. This process opens the clients (each wanting one DID and one
 * collection, as bots do), lets the servers settle, and reads their RSS and heap before and
 * after. Goal: contrail's RSS ≤ 200 MB with 10,000 idle subscribers.
 *
 *   flock /work/bench.lock node --max-semi-space-size=64 --import tsx bench/idle-subscribers.ts [clients]
 *   (default 10,000 clients; RUNS=n runs per server, default 3; KINDS=contrail-uws,bare-uws picks servers)
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { median, printTable, type Row } from './table.ts';

type ServerKind = 'contrail-uws' | 'contrail-ws' | 'bare-uws' | 'bare-ws';
interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
}
const MB = 1024 * 1024;
const RUNS = Number(process.env.RUNS ?? 3);
const SETTLE_MS = 3_000;

if (process.argv[2] === 'server') await serve(process.argv[3] as ServerKind);
else await main(Number(process.argv[2] ?? 10_000));

async function main(clients: number): Promise<void> {
  const kinds = (process.env.KINDS?.split(',') ?? ['contrail-uws', 'bare-uws', 'contrail-ws', 'bare-ws']) as ServerKind[];
  const results = new Map<ServerKind, Array<{ before: Memory; after: Memory }>>();
  for (let run = 0; run < RUNS; run++) {
    for (const kind of kinds) {
      const sample = await measure(kind, clients);
      results.set(kind, [...(results.get(kind) ?? []), sample]);
      process.stderr.write(`${kind} run ${run + 1}: RSS ${mb(sample.before.rss)} → ${mb(sample.after.rss)} MB\n`);
    }
  }
  const rows: Row[] = kinds.map((kind) => {
    const samples = results.get(kind)!;
    const before = median(samples.map((s) => s.before.rss));
    const after = median(samples.map((s) => s.after.rss));
    return {
      server: kind,
      'RSS idle (MB)': Number(mb(before)),
      [`RSS with ${clients.toLocaleString('en-US')} (MB)`]: Number(mb(after)),
      'bytes per subscriber': Math.round((median(samples.map((s) => s.after.rss - s.before.rss)) / clients)),
      'JS heap per subscriber': Math.round(median(samples.map((s) => s.after.heapUsed - s.before.heapUsed)) / clients),
    };
  });
  printTable(`Idle filtered subscribers: server memory, medians of ${RUNS} runs (each server in its own process)`, rows);
}

async function measure(kind: ServerKind, clients: number): Promise<{ before: Memory; after: Memory }> {
  const server = fork(new URL(import.meta.url).pathname, ['server', kind], { execArgv: ['--max-semi-space-size=64', '--import', 'tsx'] });
  const ask = async (type: string) => {
    server.send({ type });
    const [reply] = (await once(server, 'message')) as [any];
    return reply;
  };
  try {
    const { port } = (await once(server, 'message'))[0] as { port: number };
    await sleep(SETTLE_MS);
    const before: Memory = (await ask('memory')).memory;
    const sockets: WebSocket[] = [];
    for (let i = 0; i < clients; i += 500) {
      const batch = Array.from({ length: Math.min(500, clients - i) }, (_, j) => connect(port, i + j));
      sockets.push(...(await Promise.all(batch)));
    }
    await sleep(SETTLE_MS);
    const after: Memory = (await ask('memory')).memory;
    for (const socket of sockets) socket.terminate();
    return { before, after };
  } finally {
    server.kill();
    await once(server, 'exit');
  }
}

function connect(port: number, n: number): Promise<WebSocket> {
  const did = `did:plc:${n.toString(36).padStart(24, 'a')}`;
  const socket = new WebSocket(`ws://127.0.0.1:${port}/subscribe?wantedDids=${did}&wantedCollections=app.bsky.feed.post`, { perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** The server side, in its own process: starts one kind of server and answers memory questions. */
async function serve(kind: ServerKind): Promise<void> {
  let port: number;
  if (kind === 'contrail-uws' || kind === 'contrail-ws') {
    const { FakeRelay } = await import('../test/support/fake-relay.ts');
    const { startTestGateway, tempDir } = await import('../test/support/gateway.ts');
    const relay = await FakeRelay.start();
    const gateway = await startTestGateway(relay.url, tempDir('contrail-bench-').path, {
      transport: kind === 'contrail-uws' ? 'uws' : 'ws',
      hotCacheBytes: 64 * MB, // the default
    });
    port = gateway.port;
  } else if (kind === 'bare-uws') {
    const { loadUws } = await import('../src/server/uws-transport.ts');
    const loaded = await loadUws();
    if (!('uws' in loaded)) throw new Error(loaded.unavailable);
    const app = loaded.uws.App().ws('/*', { idleTimeout: 0, sendPingsAutomatically: false, message: () => {} });
    port = await new Promise((resolve) => app.listen('127.0.0.1', 0, (token) => resolve(loaded.uws.us_socket_local_port(token as never))));
  } else {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await once(wss, 'listening');
    port = (wss.address() as { port: number }).port;
  }
  process.on('message', (message: { type: string }) => {
    if (message.type !== 'memory') return;
    const { rss, heapUsed, external } = process.memoryUsage();
    process.send!({ memory: { rss, heapUsed, external } });
  });
  process.send!({ port });
}

function mb(bytes: number): string {
  return (bytes / MB).toFixed(1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
