/**
 * A snapshot fetch cancelled because its last waiter left is no longer joined, though it may
 * take a while to settle (the DID still being resolved, a host slot still awaited): a subscriber
 * asking for the repo in that window starts a fetch of its own and gets the snapshot, not
 * "cancelled". When the cancelled fetch settles it does not unlist the new one, which later
 * subscribers still share.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { createBackfillMetrics } from '../src/backfill/index.ts';
import { waitUntil } from './support/poll.ts';
import { snapshotSource } from './support/snapshot-source.ts';

const CAR = readFileSync(new URL('./fixtures/cars/repo-jetstream.car', import.meta.url));
const DID = 'did:plc:53iucmf5ldftgqyf2ac7hmhd';

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
  // The first two resolutions are slow (a PLC directory taking its time).
  let releaseFirst!: () => void;
  let releaseSecond!: () => void;
  const firstResolution = new Promise<void>((resolve) => (releaseFirst = resolve));
  const secondResolution = new Promise<void>((resolve) => (releaseSecond = resolve));
  let resolutions = 0;
  const registry = new Registry();
  const snapshots = snapshotSource(pdsUrl, {
    resolve: async () => {
      const n = ++resolutions;
      if (n === 1) await firstResolution;
      if (n === 2) await secondResolution;
      return { pdsUrl };
    },
    metrics: createBackfillMetrics(registry),
  });

  // Subscriber A asks, then leaves while the DID is still being resolved: its fetch is cancelled.
  const a = new AbortController();
  const askedByA = snapshots.get(DID, 1, a.signal).catch((err: Error) => err);
  a.abort();
  assert.match(((await askedByA) as Error).message, /cancelled/);

  // Subscriber B asks for the same repo right after; it never leaves.
  const askedByB = snapshots.get(DID, 2, new AbortController().signal).then(
    (snapshot) => snapshot,
    (err: Error) => err,
  );
  // A's cancelled fetch settles while B's is still resolving; then C asks, and shares B's fetch.
  releaseFirst();
  await waitUntil(async () => (await registry.metrics()).includes('contrail_backfill_snapshots_total{result="fetch_failed"} 1'), 'the cancelled fetch to settle');
  await new Promise((resolve) => setImmediate(resolve));
  const askedByC = snapshots.get(DID, 3, new AbortController().signal);
  releaseSecond();
  const got = await askedByB;
  assert.ok(!(got instanceof Error), `B's backfill failed: ${(got as Error).message}`);
  assert.equal(got.did, DID);
  assert.equal(await askedByC, got, 'C shares B’s fetch');
  assert.equal(resolutions, 2);
});
