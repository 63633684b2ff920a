/**
 * Under --verify, reading from the upstream pauses while too many new repos wait for their DID
 * documents (more than the resolver lets wait) or too many bytes are held for repos whose keys are
 * fetched (half of maxHeldBytes). Those bounds counted the PLC directory's repos and did:web ones
 * together. did:web documents are served by hosts anyone runs, and any account can make one (a
 * subdomain each): hosts that hold their answers kept their repos waiting, up to the fetch timeout
 * and the patient retries after it, and with enough of them (or enough bytes of their commits)
 * reading paused for every repo on the network, did:plc ones whose documents the directory served
 * at once included. The PLC directory is the operator's, and a slow one pauses reading as before;
 * did:web repos are bounded on their own and never pause it.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { IdentityResolver } from '../src/identity/index.ts';
import type { UpstreamMessage } from '../src/upstream/index.ts';
import { createVerifyMetrics, Verifier } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { seriesValue } from './support/exposition.ts';
import { Gate, localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf, didDocument, identityCacheUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
/** Fetches at once, and waiting, of each source: the resolver's bounds, scaled down. */
const MAX_CONCURRENT = 1;
const MAX_QUEUED = 4;

const post = (rkey: string, bytes = 100) => ({ action: 'create' as const, collection: POST, rkey, record: { $type: POST, text: rkey.padEnd(bytes, 'x'), createdAt: '2026-12-01T00:00:00.000Z' } });

/** A Verifier whose did:plc documents come from a directory that answers at once, its did:web hosts (`webRepos` of them, on 127.0.0.1) holding their answers. */
async function verifierWithStallingHosts(t: TestContext, webRepos: number, maxHeldBytes?: number) {
  const defer = cleanup(t);
  const gate = new Gate();
  const release = gate.stall();
  const web: SignedRepo[] = [];
  for (let i = 0; i < webRepos; i++) {
    const { url } = await localHttpServer(t, (_req, res) => void gate.passed.then(() => res.writeHead(404).end()));
    web.push(await SignedRepo.create(`did:web:localhost%3A${new URL(url).port}`));
  }
  defer(release); // the held hosts answer before their servers close
  const alice = await SignedRepo.create('did:plc:alicedidwebstallpause00000');
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => res.end(didDocument(alice.did, alice.signingKey)));
  const cache = identityCacheUnderTest(defer, 'contrail-did-web-stall-');
  // Private endpoints allowed: the did:web hosts are on 127.0.0.1. A timeout far longer than the test.
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, maxConcurrent: MAX_CONCURRENT, maxQueued: MAX_QUEUED, timeoutMs: 120_000 });
  defer(() => identity.stop());
  const registry = new Registry();
  const delivered: UpstreamMessage[] = [];
  const pauses: boolean[] = [];
  const verifier = new Verifier({
    mode: 'signatures',
    identity,
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message) => delivered.push(message),
    onBackpressure: (paused) => pauses.push(paused),
    ...(maxHeldBytes !== undefined && { maxHeldBytes }),
  });
  const metric = async (series: string) => seriesValue(await registry.metrics(), series);
  return { verifier, web, alice, delivered, pauses, metric };
}

test('more new did:web repos than the resolver lets wait, their hosts holding their answers, do not pause reading: did:plc repos go on', async (t) => {
  const { verifier, web, alice, delivered, pauses, metric } = await verifierWithStallingHosts(t, 2 * MAX_QUEUED);
  let seq = 0;
  for (const repo of web) verifier.handle(commitOf(await repo.commit(++seq, [post('3laaaaaaaaaa2')])));
  const plcSeq = ++seq;
  verifier.handle(commitOf(await alice.commit(plcSeq, [post('3laaaaaaaaaa3')])));
  await waitUntil(() => delivered.some((message) => message.type === 'commit' && message.seq === plcSeq), 'the did:plc repo\'s commit to be emitted', 30_000);

  assert.deepEqual(pauses, [], 'reading paused for did:web hosts holding their answers');
  assert.equal(await metric('contrail_verify_read_pauses_total{reason="resolving"}'), 0);
  // Past the bound, a new did:web repo is not held: its commit fails, and the repo is out of sync.
  assert.equal(await metric('contrail_verify_failures_total{reason="unknown_key"}'), web.length - MAX_QUEUED);
  assert.equal(verifier.heldRepos().length, MAX_QUEUED, 'the did:web repos within the bound are held');
});

test('bytes held for new did:web repos whose hosts hold their answers do not pause reading: did:plc repos go on', async (t) => {
  const maxHeldBytes = 64 * 1024;
  const { verifier, web, alice, delivered, pauses, metric } = await verifierWithStallingHosts(t, 2, maxHeldBytes);
  // Each did:web repo sends 24 KB of commits: together more than half the bound, where reading pauses.
  let seq = 0;
  for (let round = 0; round < 6; round++) {
    for (const repo of web) verifier.handle(commitOf(await repo.commit(++seq, [post(`3l${String(round).padStart(11, 'a')}`, 4_000)])));
  }
  const plcSeq = ++seq;
  verifier.handle(commitOf(await alice.commit(plcSeq, [post('3laaaaaaaaaa3')])));
  await waitUntil(() => delivered.some((message) => message.type === 'commit' && message.seq === plcSeq), 'the did:plc repo\'s commit to be emitted', 30_000);

  assert.deepEqual(pauses, [], 'reading paused for did:web hosts holding their answers');
  assert.equal(await metric('contrail_verify_read_pauses_total{reason="held_bytes"}'), 0);
  assert.ok((await metric('contrail_verify_failures_total{reason="held_overflow"}')) > 0, 'past their share of the bound, did:web repos\' commits fail as held_overflow');
});
