/**
 * Review test (fails on main): SnapshotSource.get joins any flight still in #flights, including
 * one whose every waiter left (its AbortController aborted). Such a flight stays in the map until
 * its promise settles — while the DID is being resolved, or while it waits for a HostLimiter slot
 * — and then fails with "cancelled: no subscriber waits for it any more". A subscriber that asks
 * for the repo in that window gets a `failed` backfill (fetch_failed, "cancelled") it never
 * cancelled, and its repo is not backfilled.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SnapshotSource, createBackfillMetrics, type FetchLimits } from '../src/backfill/index.ts';

const CAR = readFileSync(new URL('./fixtures/cars/repo-jetstream.car', import.meta.url));
const DID = 'did:plc:53iucmf5ldftgqyf2ac7hmhd';
const LIMITS: FetchLimits = { maxBytes: 1024 * 1024, timeoutMs: 2_000, attempts: 3, backoffMs: 20, maxRetryAfterMs: 5_000, allowPrivateEndpoints: true };

const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': CAR.length });
  res.end(CAR);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
after(() => {
  server.closeAllConnections();
  server.close();
});
const pdsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

test('a subscriber asking for a repo whose previous fetch was just cancelled (by the last subscriber leaving) gets the snapshot, not "cancelled"', async () => {
  // The first resolution is slow (a PLC directory taking its time); later ones answer at once.
  let releaseFirst!: () => void;
  const firstResolution = new Promise<void>((resolve) => (releaseFirst = resolve));
  let resolutions = 0;
  const snapshots = new SnapshotSource({
    resolve: async () => {
      if (++resolutions === 1) await firstResolution;
      return { pdsUrl };
    },
    limits: LIMITS,
    perHost: 2,
    concurrency: 4,
    cacheBytes: 1024 * 1024,
    cacheTtlMs: 60_000,
    tip: () => 0,
    logger: pino({ level: 'silent' }),
    metrics: createBackfillMetrics(new Registry()),
  });

  // Subscriber A asks, then leaves while the DID is still being resolved: its fetch is cancelled.
  const a = new AbortController();
  const askedByA = snapshots.get(DID, a.signal).catch((err: Error) => err);
  a.abort();
  assert.match(((await askedByA) as Error).message, /cancelled/);

  // Subscriber B asks for the same repo right after; it never leaves.
  const askedByB = snapshots.get(DID, new AbortController().signal).then(
    (snapshot) => snapshot,
    (err: Error) => err,
  );
  releaseFirst();
  const got = await askedByB;
  assert.ok(!(got instanceof Error), `B's backfill failed: ${(got as Error).message}`);
  assert.equal(got.did, DID);
});
