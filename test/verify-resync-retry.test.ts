/**
 * A repo whose resync failed is not silenced for good. A failure to resolve its DID that outlasts
 * the resolver's patience (the PLC directory answers 503 once, and the resolver here asks no
 * second time: patientRetriesMs []) fails its held commit (unknown_key), sending the repo out of
 * sync; the resync started at once meets the same remembered failure and fails too. The repo's
 * first commit after the retry delay starts another resync, which succeeds now that the directory
 * answers: the repo is back in sync and that commit is not withheld. A resync that fails again
 * doubles the wait before the next try.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { seriesValue } from './support/exposition.ts';
import { localHttpServer } from './support/local-http.ts';
import { answerSync, syncMethodOf } from './support/repo-host.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'a')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

/**
 * alice's repo, a PLC directory that answers 503 to its first request, a PDS that answers 500 to
 * its first `pdsFailures` resyncs (their getLatestCommit), and a Verifier resyncing through them as the gateway
 * does (resyncRepo: resolve, fetch the repo, check its commit). `failureTtlMs` is how long
 * the resolver remembers a failure; `nowMs` the clock the Verifier times its retries on.
 */
async function setup(
  t: TestContext,
  { pdsFailures, resyncRetryMs, failureTtlMs, nowMs }: { pdsFailures: number; resyncRetryMs: number; failureTtlMs: number; nowMs?: () => number },
) {
  const alice = await SignedRepo.create('did:plc:alicetransient00000000000');
  let plcRequests = 0;
  let pdsRequests = 0;
  const { url: pdsUrl } = await localHttpServer(t, (req, res) => {
    // Each resync begins with getLatestCommit: that is the request that fails.
    if (syncMethodOf(req) === 'com.atproto.sync.getLatestCommit' && ++pdsRequests <= pdsFailures) return res.writeHead(500).end();
    void answerSync(req, res, (did) => (did === alice.did ? alice : undefined));
  });
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    if (++plcRequests === 1) return res.writeHead(503).end(); // a hiccup
    res.end(didDocument(did, alice.signingKey, pdsUrl));
  });

  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl, {
    failureTtlMs,
    patientRetriesMs: [],
    resyncFromPds: true,
    resyncRetryMs, // the gateway's is 30 s, as the resolver's failure memory
    nowMs,
  });
  const metrics = () => registry.metrics();
  const metric = async (series: string) => seriesValue(await metrics(), series);
  return { alice, verifier, delivered, metrics, metric };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a DID whose first resolution failed once (PLC 503) is not silenced: once the directory answers, its valid commits are delivered', async (t) => {
  // The gateway's resolver remembers a failure for 30 s; a short memory keeps the test short.
  const { alice, verifier, delivered, metrics, metric } = await setup(t, { pdsFailures: 0, resyncRetryMs: 300, failureTtlMs: 300 });

  verifier.handle(commitOf(await alice.commit(1, [post('first, while the directory hiccups')])));
  await waitUntil(async () => (await metrics()).includes('contrail_verify_resyncs_total{result='), 'the first commit judged and a resync tried', 5_000);
  await verifier.idle();

  // Well after the directory answers again (and the remembered failure expired), alice posts
  // again. Time itself is what this waits for: both memories (300 ms) are over, however loaded.
  await sleep(600);
  verifier.handle(commitOf(await alice.commit(2, [post('second, a minute later')])));
  const resyncs = async () => (await metric('contrail_verify_resyncs_total{result="resynced"}')) + (await metric('contrail_verify_resyncs_total{result="failed"}'));
  await waitUntil(async () => (await resyncs()) === 2, 'the second resync to end', 10_000);
  await verifier.idle();
  const text = await metrics();
  assert.equal(
    verifier.outOfSync(alice.did),
    undefined,
    `the repo is still out of sync: ${text.split('\n').filter((l) => /^contrail_verify_(resyncs|failures)_total\{/.test(l)).join('; ')}`,
  );
  assert.ok(!text.includes('contrail_verify_failures_total{reason="out_of_sync"}'), 'the valid commit after the hiccup is not withheld as out_of_sync');
  assert.ok(text.includes('contrail_verify_resyncs_total{result="resynced"} 1'), 'the second resync succeeded');
  // Delivered, or (if a resync's snapshot already holds it) dropped as rev_not_newer: either way not withheld.
  assert.ok(delivered.length === 1 || text.includes('contrail_verify_failures_total{reason="rev_not_newer"} 1'));
});

test('each resync that fails in a row doubles the wait before a commit starts the next', async (t) => {
  // The Verifier's clock moves only when the test says: "within the doubled wait" holds however
  // long this loaded machine takes between two lines.
  let nowMs = 0;
  // No memory of the directory's failure: each resync resolves anew and reaches the PDS.
  const { alice, verifier, metric } = await setup(t, { pdsFailures: 2, resyncRetryMs: 1_000, failureTtlMs: 0, nowMs: () => nowMs });
  verifier.handle(commitOf(await alice.commit(1, [post('while the directory hiccups')])));
  await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="failed"}')) === 1, 'the first resync to fail (PDS 500)', 5_000);
  nowMs += 1_200;
  verifier.handle(commitOf(await alice.commit(2, [post('after the first wait: retries, and the PDS fails')])));
  await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="failed"}')) === 2, 'the second resync to fail (PDS 500 again)', 5_000);
  // Commit 2 was judged after that resync failed: withheld. Past the first wait, within the
  // doubled one, commit 3 is withheld too, and starts no resync.
  await verifier.idle();
  assert.equal(await metric('contrail_verify_failures_total{reason="out_of_sync"}'), 1);
  nowMs += 1_400;
  verifier.handle(commitOf(await alice.commit(3, [post('within the doubled wait')])));
  await verifier.idle();
  assert.equal(await metric('contrail_verify_failures_total{reason="out_of_sync"}'), 2, 'the commit within the doubled wait is withheld');
  assert.equal(await metric('contrail_verify_resyncs_total{result="failed"}'), 2, 'and starts no resync');
  nowMs += 1_000;
  verifier.handle(commitOf(await alice.commit(4, [post('past the doubled wait')])));
  await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="resynced"}')) === 1, 'the third resync to succeed', 5_000);
  await verifier.idle();
  assert.equal(verifier.outOfSync(alice.did), undefined);
});
