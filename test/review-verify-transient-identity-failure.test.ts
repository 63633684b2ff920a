/**
 * Review test (fails on main): one transient failure to resolve a DID (the PLC directory answers
 * 503 or 429 once, or times out) silences the repo until a #sync, which an ordinary repo never
 * sends. The held commit fails unknown_key, which marks the repo out of sync and starts a resync
 * at once; the resync resolves the DID through the same IdentityResolver, which still remembers
 * the failure (failureTtlMs, 30 s in the gateway), so it fails immediately and is never tried
 * again: every later commit of the repo, valid and signed, is withheld as out_of_sync — long
 * after the directory answers again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { commitSignatureCheck, createBackfillMetrics, SnapshotSource } from '../src/backfill/index.ts';
import { IdentityCache, IdentityResolver } from '../src/identity/index.ts';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../src/upstream/index.ts';
import { createVerifyMetrics, SigningKeys, Verifier } from '../src/verify/index.ts';
import { tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, commitFrameOf, type Write } from './support/signed-repo.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'a')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('a DID whose first resolution failed once (PLC 503) is not silenced: once the directory answers, its valid commits are delivered', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicetransient00000000000');
  let plcRequests = 0;
  const { url: pdsUrl } = await localHttpServer(t, async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
    for await (const chunk of alice.car()) res.write(chunk);
    res.end();
  });
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    if (++plcRequests === 1) return res.writeHead(503).end(); // a hiccup
    res.end(
      JSON.stringify({
        id: did,
        verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: did, publicKeyMultibase: alice.signingKey.slice('did:key:'.length) }],
        service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsUrl }],
      }),
    );
  });

  const dir = tempDir('contrail-review-verify-');
  const cache = new IdentityCache({ path: dir.path, maxEntries: 1000 });
  t.after(async () => {
    await cache.close();
    dir.remove();
  });
  // The gateway's resolver remembers a failure for 30 s; a short memory keeps the test short.
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, failureTtlMs: 300 });
  const registry = new Registry();
  const keys = new SigningKeys();
  // The gateway's resync in small (gateway.ts resyncRepo): resolve, fetch the repo, check its commit.
  const snapshots = new SnapshotSource({
    resolve: async (did) => {
      const { pdsEndpoint, signingKey } = await identity.resolve(did);
      return { pdsUrl: pdsEndpoint!, checkCommit: commitSignatureCheck(keys, signingKey, async () => (await identity.refresh(did)).signingKey) };
    },
    limits: { maxBytes: 10_000_000, timeoutMs: 10_000, attempts: 1, backoffMs: 100, maxRetryAfterMs: 1_000, allowPrivateEndpoints: true },
    perHost: 2,
    concurrency: 2,
    cacheBytes: 0,
    cacheTtlMs: 0,
    tip: () => 0,
    logger: pino({ level: 'silent' }),
    metrics: createBackfillMetrics(registry),
  });
  const delivered: UpstreamMessage[] = [];
  const verifier = new Verifier({
    mode: 'full',
    identity,
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message) => delivered.push(message),
    resync: async (did) => (await snapshots.get(did, new AbortController().signal)).rev,
  });
  const commitOf = (body: Parameters<typeof commitFrameOf>[0]) => parseMessage(decodeFrame(commitFrameOf(body), 10_000_000));
  const metrics = () => registry.metrics();

  verifier.handle(commitOf(await alice.commit(1, [post('first, while the directory hiccups')])));
  await waitUntil(async () => (await metrics()).includes('contrail_verify_resyncs_total{result='), 'the first commit judged and a resync tried', 5_000);
  await verifier.idle();

  // Well after the directory answers again (and the remembered failure expired), alice posts again.
  await new Promise((resolve) => setTimeout(resolve, 600));
  verifier.handle(commitOf(await alice.commit(2, [post('second, a minute later')])));
  await verifier.idle();
  await new Promise((resolve) => setTimeout(resolve, 200));
  await verifier.idle();
  const text = await metrics();
  assert.equal(
    verifier.outOfSync(alice.did),
    undefined,
    `the repo is still out of sync: ${text.split('\n').filter((l) => /^contrail_verify_(resyncs|failures)_total\{/.test(l)).join('; ')}`,
  );
  assert.ok(!text.includes('contrail_verify_failures_total{reason="out_of_sync"}'), 'the valid commit after the hiccup is not withheld as out_of_sync');
  // Delivered, or (if a resync's snapshot already holds it) dropped as rev_not_newer: either way not withheld.
  assert.ok(delivered.length === 1 || text.includes('contrail_verify_failures_total{reason="rev_not_newer"} 1'));
});
