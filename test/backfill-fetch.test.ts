/**
 * Fetching repos for backfill from real HTTP servers on 127.0.0.1 that misbehave: each case ends
 * that repo's fetch with a reason, within its limits, and nothing hangs. Also the shared
 * snapshot source: one fetch for concurrent askers, reuse of a recent snapshot, cancellation.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { CarReader } from '@ipld/car';
import { varint } from 'multiformats';
import { readRepoCar, type FetchLimits } from '../src/backfill/index.ts';
import { fetchRepo } from '../src/backfill/repo-fetch.ts';
import { retryAfter } from '../src/identity/retry-after.ts';
import { backfillFailureOf } from './support/backfill-failure.ts';
import { carOf } from './support/frames.ts';
import { FETCH_LIMITS, snapshotSource } from './support/snapshot-source.ts';

const CAR = readFileSync(new URL('./fixtures/cars/repo-jetstream.car', import.meta.url));
const DID = 'did:plc:53iucmf5ldftgqyf2ac7hmhd';
const [ROOT] = await (await CarReader.fromBytes(CAR)).getRoots();
assert.ok(ROOT, 'the fixture CAR names a root');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, count: number) => void;

const servers: http.Server[] = [];
after(() => {
  for (const server of servers) server.closeAllConnections();
  for (const server of servers) server.close();
});

/** A PDS on 127.0.0.1 answering getRepo with `handler`; `requests` counts what it was asked. */
async function pds(handler: Handler): Promise<{ url: string; requests: string[]; server: http.Server }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res, requests.length);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

const serveCar: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': CAR.length });
  res.end(CAR);
};

function xrpcError(res: http.ServerResponse, status: number, error: string, message: string, headers: http.OutgoingHttpHeaders = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error, message }));
}

function fetchSnapshot(url: string, limits: Partial<FetchLimits> = {}) {
  const all = { ...FETCH_LIMITS, ...limits };
  return fetchRepo(url, DID, all, (chunks) => readRepoCar(chunks, DID, all.maxBytes));
}

describe('fetching a repo', () => {
  test('a PDS that serves the CAR: the snapshot, asked for with the DID', async () => {
    const server = await pds(serveCar);
    const snapshot = await fetchSnapshot(server.url);
    assert.equal(snapshot.records.length, 23);
    assert.deepEqual(server.requests, [`/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(DID)}`]);
  });

  for (const [error, status, reason] of [
    ['RepoTakendown', 400, 'repo_takendown'],
    ['RepoDeactivated', 400, 'repo_deactivated'],
    ['RepoSuspended', 400, 'repo_suspended'],
    ['RepoNotFound', 400, 'repo_not_found'],
    ['NotFound', 404, 'repo_not_found'],
  ] as const) {
    test(`${status} ${error}: ${reason} at once, with the PDS's message, not retried`, async () => {
      const server = await pds((_req, res) => xrpcError(res, status, error, `Repo is ${error}`));
      const failure = await backfillFailureOf(fetchSnapshot(server.url));
      assert.equal(failure.reason, reason);
      assert.match(failure.message, new RegExp(`${status} ${error}: Repo is ${error}`));
      assert.equal(server.requests.length, 1);
    });
  }

  test('429 with Retry-After, then the CAR: waits and succeeds', async () => {
    const server = await pds((req, res, count) => (count === 1 ? xrpcError(res, 429, 'RateLimitExceeded', 'slow down', { 'retry-after': '1' }) : serveCar(req, res, count)));
    const snapshot = await fetchSnapshot(server.url);
    assert.equal(snapshot.records.length, 23);
    assert.equal(server.requests.length, 2);
  });

  test('a Retry-After longer than the gateway waits: fetch_failed saying so, at once', async () => {
    const server = await pds((_req, res) => xrpcError(res, 429, 'RateLimitExceeded', 'slow down', { 'retry-after': '3600' }));
    const failure = await backfillFailureOf(fetchSnapshot(server.url));
    assert.equal(failure.reason, 'fetch_failed');
    assert.match(failure.message, /429 RateLimitExceeded.*wait 3600 s/);
    assert.equal(server.requests.length, 1);
  });

  test('5xx twice, then the CAR: retried with backoff', async () => {
    const server = await pds((req, res, count) => (count < 3 ? xrpcError(res, 502, 'UpstreamFailure', 'try again') : serveCar(req, res, count)));
    assert.equal((await fetchSnapshot(server.url)).records.length, 23);
    assert.equal(server.requests.length, 3);
  });

  test('5xx every time: fetch_failed after the last attempt', async () => {
    const server = await pds((_req, res) => xrpcError(res, 500, 'InternalServerError', 'broken'));
    const failure = await backfillFailureOf(fetchSnapshot(server.url));
    assert.equal(failure.reason, 'fetch_failed');
    assert.equal(server.requests.length, FETCH_LIMITS.attempts);
  });

  test('a PDS that never answers: timeout after each attempt, then the reason', async () => {
    const server = await pds(() => {}); // accepts, reads the request, never responds
    const failure = await backfillFailureOf(fetchSnapshot(server.url, { timeoutMs: 200, attempts: 2 }));
    assert.equal(failure.reason, 'timeout');
    assert.equal(server.requests.length, 2);
  });

  test('a PDS that never answers while the wall clock steps back: still a timeout', async (t) => {
    // Date alone is simulated: it reads the same all along, as a clock stepped back (NTP) by as long
    // as the fetch waited would read. The deadline's timer is real.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const server = await pds(() => {}); // accepts, reads the request, never responds
    const failure = await backfillFailureOf(fetchSnapshot(server.url, { timeoutMs: 200, attempts: 1 }));
    assert.equal(failure.reason, 'timeout', failure.message);
  });

  test('a PDS that stops sending halfway through the CAR: timeout', async () => {
    const server = await pds((_req, res) => {
      res.writeHead(200, { 'content-length': CAR.length });
      res.write(CAR.subarray(0, 3000)); // and nothing more
    });
    const failure = await backfillFailureOf(fetchSnapshot(server.url, { timeoutMs: 300, attempts: 1 }));
    assert.equal(failure.reason, 'timeout');
  });

  test('a connection cut halfway through the CAR: bad_car (truncated)', async () => {
    const server = await pds((_req, res) => {
      res.writeHead(200);
      res.write(CAR.subarray(0, 3000), () => res.destroy());
    });
    const failure = await backfillFailureOf(fetchSnapshot(server.url, { attempts: 1 }));
    assert.ok(['bad_car', 'fetch_failed'].includes(failure.reason), failure.reason);
  });

  test('a 1 GB stream: too_large once the limit is read, and the connection is closed', async () => {
    let written = 0;
    const server = await pds((_req, res) => {
      res.writeHead(200); // chunked: no Content-Length to refuse up front
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      // A real CAR header, then one block that claims to be a gigabyte and goes on and on.
      res.write(Buffer.concat([carOf([ROOT], []), varint.encodeTo(1e9, new Uint8Array(varint.encodingLength(1e9))), ROOT.bytes]));
      const pump = () => {
        while (written < 1e9 && res.write(chunk)) written += chunk.length;
        if (written < 1e9) res.once('drain', pump);
        else res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    });
    // A deadline far off: reading 4 MiB takes this loaded machine more than FETCH_LIMITS' 2 s at times.
    const failure = await backfillFailureOf(fetchSnapshot(server.url, { maxBytes: 4 * 1024 * 1024, timeoutMs: 60_000 }));
    assert.equal(failure.reason, 'too_large', failure.message);
    assert.ok(written < 1e8, `the server wrote ${written} bytes: the fetch must stop near its limit`);
  });

  test('a declared Content-Length over the limit: too_large before reading the body', async () => {
    const server = await pds((_req, res) => {
      res.writeHead(200, { 'content-length': 1e9 });
      res.write(CAR.subarray(0, 100));
    });
    const failure = await backfillFailureOf(fetchSnapshot(server.url, { maxBytes: 4096 }));
    assert.equal(failure.reason, 'too_large');
    assert.match(failure.message, /1000000000 bytes/);
  });

  test('loopback endpoints are refused unless private endpoints are allowed: by IP and by name', async () => {
    const server = await pds(serveCar);
    for (const url of [server.url, server.url.replace('127.0.0.1', 'localhost')]) {
      const failure = await backfillFailureOf(fetchSnapshot(url, { allowPrivateEndpoints: false }));
      assert.equal(failure.reason, 'private_endpoint', url);
    }
    assert.equal(server.requests.length, 0);
  });

  test('Retry-After: seconds or an HTTP date', () => {
    assert.equal(retryAfter('7'), 7000);
    assert.equal(retryAfter(new Date(10_000 + 3_000).toUTCString(), 10_000), 3000);
    assert.equal(retryAfter('soon'), undefined);
    assert.equal(retryAfter(undefined), undefined);
  });
});

describe('shared snapshots', () => {
  test('concurrent askers of one DID share one fetch; a later one reuses the snapshot', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const server = await pds((req, res, count) => void gate.then(() => serveCar(req, res, count)));
    const snapshots = snapshotSource(server.url);
    const asks = [1, 2, 3].map((asker) => snapshots.get(DID, asker, new AbortController().signal));
    while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    release();
    const [a, b, c] = await Promise.all(asks);
    assert.ok(a);
    assert.equal(a, b);
    assert.equal(b, c);
    assert.equal((await snapshots.get(DID, 1, new AbortController().signal)).commitCid, a.commitCid);
    assert.equal(server.requests.length, 1);
  });

  test('an expired snapshot is fetched again', async () => {
    const server = await pds(serveCar);
    const snapshots = snapshotSource(server.url, { cacheTtlMs: 0 });
    await snapshots.get(DID, 1, new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await snapshots.get(DID, 1, new AbortController().signal);
    assert.equal(server.requests.length, 2);
  });

  test('when every asker leaves, the fetch is cancelled and the connection closed', async () => {
    let closed!: () => void;
    const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
    const server = await pds((req) => req.socket.once('close', closed)); // never answers
    const snapshots = snapshotSource(server.url);
    const first = new AbortController();
    const second = new AbortController();
    const asks = [snapshots.get(DID, 1, first.signal), snapshots.get(DID, 2, second.signal)].map((p) => backfillFailureOf(p));
    while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    first.abort();
    second.abort();
    for (const failure of await Promise.all(asks)) assert.match(failure.message, /cancelled/);
    await connectionClosed;
  });

  test('a DID that cannot be resolved: identity_unavailable with the resolver\'s message', async () => {
    const snapshots = snapshotSource('http://127.0.0.1:1', {
      resolve: async () => {
        throw new Error('the PLC directory has no such DID');
      },
    });
    const failure = await backfillFailureOf(snapshots.get(DID, 1, new AbortController().signal));
    assert.equal(failure.reason, 'identity_unavailable');
    assert.match(failure.message, /no such DID/);
  });

  test('per-host concurrency: at most perHost fetches to one PDS at a time', async () => {
    let active = 0;
    let most = 0;
    const server = await pds((req, res, count) => {
      active++;
      most = Math.max(most, active);
      setTimeout(() => {
        active--;
        serveCar(req, res, count);
      }, 30);
    });
    const snapshots = snapshotSource(server.url, { perHost: 2, cacheTtlMs: 0 });
    // Different DIDs (a resolver mapping them all to this PDS): the CAR names DID, so others fail
    // their commit check after the fetch, which is what this test needs: fetches, not snapshots.
    const dids = Array.from({ length: 6 }, (_, i) => `did:plc:aaaaaaaaaaaaaaaaaaaaaaa${i}`);
    await Promise.allSettled(dids.map((did, asker) => snapshots.get(did, asker, new AbortController().signal)));
    assert.equal(server.requests.length, 6);
    assert.equal(most, 2);
  });
});
