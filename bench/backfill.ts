/**
 * bench/backfill: backfill throughput in records/s for one repo of RECORDS records, from the real
 * PDS (the e2e suite's @atproto/pds on 127.0.0.1) and from a local CAR server serving the same
 * export (a static file: what the fetch and read cost without the PDS's own work), beside peers
 * measured in the same run on the same repo: the bare download, @atproto/repo's reader (the
 * reference implementation: readCarWithRoot, MST.list, each record read) and paging
 * com.atproto.repo.listRecords (what a client does without backfill). The gateway rows are the
 * whole path a subscriber sees: /subscribe?wantedDids=…&backfill=true on an in-process gateway,
 * from the upgrade to the "complete" message.
 *
 * Needs the e2e suite's dependencies (the real PDS): `npm run test:e2e` installs them once.
 *   flock /work/bench.lock npx tsx bench/backfill.ts      (RECORDS=20000 for a bigger repo)
 */
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MST, MemoryBlockstore, def, readCarWithRoot } from '@atproto/repo';
import WebSocket from 'ws';
import { readRepoCar, type FetchLimits } from '../src/backfill/index.ts';
import { fetchRepo } from '../src/backfill/repo-fetch.ts';
import { startTestGateway } from '../test/support/gateway.ts';
import { median, printTable, type Row } from './table.ts';

if (!existsSync(new URL('../test/e2e/node_modules/@atproto/pds', import.meta.url))) {
  process.stderr.write('bench/backfill: needs the real PDS from test/e2e: run `npm run test:e2e` once (it installs test/e2e/node_modules)\n');
  process.exit(1);
}
// Loaded by path from test/e2e (its own dependencies, outside this project's typecheck).
type Network = { pdsUrl: string; plcUrl: string; firehoseUrl: string; close(): Promise<void> };
const networkModule: string = '../test/e2e/lib/network.mjs';
const apiModule: string = '../test/e2e/node_modules/@atproto/api/dist/index.js';
const { startNetwork } = (await import(networkModule)) as { startNetwork(options: { dataDir: string }): Promise<Network> };
const { AtpAgent } = await import(apiModule);

const RECORDS = Number(process.env.RECORDS ?? 5000);
const RUNS = 5;
const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow', 'app.bsky.feed.repost'];
const LIMITS: FetchLimits = { maxBytes: 512 * 1024 * 1024, timeoutMs: 120_000, attempts: 1, backoffMs: 0, maxRetryAfterMs: 0, allowPrivateEndpoints: true };

/** Median ms of RUNS runs of `run`, which must find every record. */
async function time(run: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    const count = await run();
    if (count !== RECORDS) throw new Error(`expected ${RECORDS} records, got ${count}`);
    times.push(performance.now() - started);
  }
  return median(times);
}

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** /subscribe?backfill=true on the gateway: upgrade → "complete", counting the backfilled records. */
function subscribeBackfill(port: number, did: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let records = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/subscribe?wantedDids=${did}&backfill=true`);
    ws.on('message', (data: Buffer) => {
      const event = JSON.parse(data.toString());
      if (event.backfilled) records++;
      else if (event.kind === 'backfill') {
        ws.close();
        if (event.backfill.status === 'complete') resolve(records);
        else reject(new Error(event.backfill.message));
      }
    });
    ws.on('error', reject);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'contrail-bench-backfill-'));
const network = await startNetwork({ dataDir: join(dir, 'pds') });
const servers: http.Server[] = [];
try {
  const agent = new AtpAgent({ service: network.pdsUrl });
  await agent.createAccount({ handle: 'bench.test', email: 'bench@example.com', password: 'bench-password' });
  const did: string = agent.session!.did;
  process.stderr.write(`writing ${RECORDS} records…\n`);
  for (let n = 0; n < RECORDS; ) {
    const writes = [];
    for (; writes.length < 200 && n < RECORDS; n++) {
      const collection = COLLECTIONS[n % COLLECTIONS.length];
      const createdAt = new Date(Date.UTC(2025, 0, 1, 0, 0, n % 60, n % 1000)).toISOString();
      const value =
        collection === 'app.bsky.feed.post'
          ? { $type: collection, text: `post ${n}: the quick brown fox jumps over the lazy dog`, langs: ['en'], createdAt }
          : collection === 'app.bsky.graph.follow'
            ? { $type: collection, subject: `did:plc:${String(n).padStart(24, 'a')}`, createdAt }
            : { $type: collection, subject: { uri: `at://${did}/app.bsky.feed.post/3l${String(n).padStart(11, '2').replace(/[01]/g, '2')}`, cid: 'bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454' }, createdAt };
      writes.push({ $type: 'com.atproto.repo.applyWrites#create' as const, collection, value });
    }
    await agent.com.atproto.repo.applyWrites({ repo: did, writes });
  }

  // The local CAR server: the PDS's export, served as a file; its PLC names it as the repo's PDS.
  const car = new Uint8Array(await (await fetch(`${network.pdsUrl}/xrpc/com.atproto.sync.getRepo?did=${did}`)).arrayBuffer());
  const carServer = await listen((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': car.length });
    res.end(car);
  });
  const plcServer = await listen((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: did, alsoKnownAs: [], service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: carServer.url }] }));
  });
  servers.push(carServer.server, plcServer.server);

  const rate = (ms: number) => Math.round(RECORDS / (ms / 1000));
  const row = (source: string, what: string, ms: number): Row => ({ source, what, 'records/s': rate(ms), ms: Math.round(ms) });
  const rows: Row[] = [];
  for (const [source, base] of [
    ['real PDS', network.pdsUrl],
    ['local CAR server', carServer.url],
  ] as const) {
    const getRepoUrl = `${base}/xrpc/com.atproto.sync.getRepo?did=${did}`;
    rows.push(row(source, 'getRepo download only (peer)', await time(async () => (await (await fetch(getRepoUrl)).arrayBuffer(), RECORDS))));
    rows.push(row(source, 'contrail: streamed fetch, CID check per block, commit, MST walk, record JSON', await time(async () => (await fetchRepo(base, did, LIMITS, (chunks) => readRepoCar(chunks, did, LIMITS.maxBytes))).records.length)));
    rows.push(
      row(
        source,
        '@atproto/repo: download, readCarWithRoot, MST.list, read each record (peer, no JSON)',
        await time(async () => {
          const { root, blocks } = await readCarWithRoot(new Uint8Array(await (await fetch(getRepoUrl)).arrayBuffer()));
          const storage = new MemoryBlockstore(blocks);
          const commit = await storage.readObj(root, def.commit);
          let count = 0;
          for (const { value } of await MST.load(storage, commit.data).list()) {
            await storage.readRecord(value);
            count++;
          }
          return count;
        }),
      ),
    );
    if (source === 'real PDS') {
      rows.push(
        row(
          source,
          'listRecords, pages of 100 (peer: a client without backfill)',
          await time(async () => {
            let count = 0;
            for (const collection of COLLECTIONS) {
              let cursor: string | undefined;
              do {
                const page = (await (await fetch(`${base}/xrpc/com.atproto.repo.listRecords?repo=${did}&collection=${collection}&limit=100${cursor ? `&cursor=${cursor}` : ''}`)).json()) as { records: unknown[]; cursor?: string };
                count += page.records.length;
                cursor = page.records.length === 100 ? page.cursor : undefined;
              } while (cursor);
            }
            return count;
          }),
        ),
      );
    }
    const plcUrl = source === 'real PDS' ? network.plcUrl : plcServer.url;
    const gateway = await startTestGateway(network.firehoseUrl, join(dir, `contrail-${rows.length}`), { plcUrl, backfillCacheTtlMs: 1, backfillMaxRepoBytes: LIMITS.maxBytes, backfillTimeoutMs: LIMITS.timeoutMs });
    try {
      rows.push(row(source, 'contrail gateway: /subscribe?backfill=true, upgrade → "complete" message', await time(() => subscribeBackfill(gateway.port, did))));
    } finally {
      await gateway.stop();
    }
  }
  printTable(`Backfill of one repo of ${RECORDS.toLocaleString('en-US')} records (${(car.length / 1e6).toFixed(1)} MB CAR) on 127.0.0.1, median of ${RUNS}`, rows);
} finally {
  for (const server of servers) server.close();
  await network.close();
  rmSync(dir, { recursive: true, force: true });
}
