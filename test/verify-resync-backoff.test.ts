/**
 * A successful resync is not free to repeat. Any one bad frame of a repo forces a resync (the
 * repo's latest commit fetched from its PDS), so a relay sending one per repo
 * per second would make contrail ask each repo's PDS for it once a second. A repo that fails
 * again soon after a resync waits, as after a failed resync: its commits are withheld
 * (out_of_sync) until one arriving --verify-resync-retry after that resync starts the next, the
 * wait doubling with each resync in a row so followed, and starting over once the repo has stayed
 * in sync for the longest wait. Other repos do not wait with it. A restart forgets the waits (a
 * bounded cost, README: Verification): a new Verifier fetches a repo at its first bad frame and its
 * run starts over. The fetches are counted at the PDS.
 * The Verifier's clock moves only when a test moves it: the waits are asserted on that clock, so a
 * loaded machine taking long between two lines changes nothing.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { UpstreamMessage } from '../src/upstream/index.ts';
import { seriesValue } from './support/exposition.ts';
import { localHttpServer } from './support/local-http.ts';
import { answerSync, syncMethodOf } from './support/repo-host.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { withWrongPrevData } from './support/tamper.mjs';
import { capturingLogger } from './support/upstream-harness.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'b')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

const DEFERRED = 'repo is out of sync again soon after a resync: its commits are withheld until a valid #sync, or until one arriving after resyncInMs starts another resync';

interface LogLine {
  msg: string;
  did?: string;
  resyncsInARow?: number;
  resyncInMs?: number;
}

/**
 * alice and bob, a PLC directory and a PDS serving their repos as they are when asked, and a
 * Verifier resyncing from it on a clock (from 0) that only `advanceTo` moves.
 */
async function setup(t: TestContext, options: { resyncRetryMs: number; resyncRetryMaxMs?: number }) {
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((name) => SignedRepo.create(`did:plc:${name}backoff`.padEnd(32, '0'))));
  const repos = new Map([alice!, bob!].map((repo) => [repo.did, repo]));
  let clock = 0;
  const advanceTo = (ms: number) => {
    assert.ok(ms >= clock, `the clock goes forward only (at ${clock}, asked for ${ms})`);
    clock = ms;
  };
  /** Each resync the PDS was asked for (its getLatestCommit), with the Verifier's clock then. */
  const fetches: { did: string; at: number }[] = [];
  const { url: pdsUrl } = await localHttpServer(t, (req, res) => {
    if (syncMethodOf(req) === 'com.atproto.sync.getLatestCommit') fetches.push({ did: new URL(req.url!, 'http://pds').searchParams.get('did') ?? '', at: clock });
    void answerSync(req, res, (did) => repos.get(did));
  });
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    res.end(didDocument(did, repos.get(did)!.signingKey, pdsUrl));
  });
  const logs: LogLine[] = [];
  const logger = capturingLogger(logs, 'info');
  // Every deferral line is logged (repoLogEveryMs 0): they are this test's evidence, per repo.
  const start = () => verifierUnderTest(t, plcUrl, { resyncFromPds: true, logger, nowMs: () => clock, repoLogEveryMs: 0, ...options });
  let { verifier, delivered, registry, resyncsStarted } = start();
  /** A gateway restarted: a new Verifier on the same relay, directory, PDS, clock and log. */
  const restart = () => ({ verifier, delivered, registry, resyncsStarted } = start());
  const metric = async (series: string) => seriesValue(await registry.metrics(), series);
  const resyncsEnded = async () => (await metric('contrail_verify_resyncs_total{result="resynced"}')) + (await metric('contrail_verify_resyncs_total{result="failed"}'));
  let seq = 0;
  /** The relay passes on one commit of `repo` (tampered if told), and it is judged, with any resync it started. */
  const send = async (repo: SignedRepo, text: string, tampered = false): Promise<number> => {
    const body = await repo.commit(++seq, [post(text)]);
    verifier.handle(commitOf(tampered ? withWrongPrevData(body) : body));
    // Judged (after its repo's key is resolved, the first time), and any resync it started ended:
    // taken from the queue first, where it is neither held nor judged.
    await verifier.idle();
    await waitUntil(async () => verifier.heldRepos().length === 0 && (await resyncsEnded()) === resyncsStarted(), `commit ${body.seq} to be judged`);
    await verifier.idle();
    return body.seq;
  };
  const seqsOf = (repo: SignedRepo) => delivered.filter((m: UpstreamMessage) => m.type === 'commit' && m.repo === repo.did).map((m) => ('seq' in m ? m.seq : undefined));
  const fetchesOf = (repo: SignedRepo) => fetches.filter((f) => f.did === repo.did);
  const deferrals = (repo: SignedRepo) => logs.filter((l) => l.msg === DEFERRED && l.did === repo.did);
  return { alice: alice!, bob: bob!, verifier: () => verifier, advanceTo, metric, send, seqsOf, fetchesOf, deferrals, restart };
}

test('a relay that breaks one repo over and over makes contrail fetch it once per wait, not once per bad commit; other repos are unaffected', async (t) => {
  // The clock stays at 0 here: every fetch of alice past the first is one too many.
  const wait = 30_000;
  const { alice, bob, verifier, metric, send, seqsOf, fetchesOf, deferrals } = await setup(t, { resyncRetryMs: wait });
  const aliceFirst = await send(alice, 'alice, before');
  const bobSeqs = [await send(bob, 'bob, before')];
  const rounds = 20;
  for (let i = 0; i < rounds; i++) {
    await send(alice, `alice, tampered ${i}`, true);
    if (i === rounds / 2) {
      // bob fails once while alice waits: his repo is resynced at once, and his next commit passes.
      await send(bob, 'bob, tampered', true);
      assert.equal(fetchesOf(bob).length, 1, 'bob is resynced at once');
    }
    bobSeqs.push(await send(bob, `bob ${i}`));
  }

  assert.equal(fetchesOf(alice).length, 1, `alice's repo was fetched ${fetchesOf(alice).length} times for ${rounds} tampered commits: once at the first, then none within the wait`);
  assert.deepEqual(seqsOf(alice), [aliceFirst], 'nothing of alice after the first tampered commit is emitted');
  assert.equal(await metric('contrail_verify_failures_total{reason="bad_inversion"}'), 2 + 1, "alice's first two tampered commits (before and after her resync), and bob's");
  assert.equal(await metric('contrail_verify_failures_total{reason="out_of_sync"}'), rounds - 2, 'the rest came while alice waited: withheld');
  assert.equal(verifier().outOfSync(alice.did), 'bad_inversion');
  assert.equal(await metric('contrail_verify_resyncs_deferred_total'), 1);
  assert.equal(deferrals(alice).length, 1, 'the wait is logged once, not once per commit');
  assert.equal(deferrals(alice)[0]!.resyncsInARow, 1);
  assert.equal(deferrals(alice)[0]!.resyncInMs, wait, 'the whole wait is ahead: the clock has not moved since her resync');
  assert.deepEqual(seqsOf(bob), bobSeqs, "bob's commits all pass, in order, while alice waits");
  assert.equal(verifier().outOfSync(bob.did), undefined);
});

test('after its wait a repo that behaves again is resynced and its commits come through; each resync in a row followed by a failure doubles the next wait', async (t) => {
  const wait = 200;
  const { alice, advanceTo, metric, send, seqsOf, fetchesOf, deferrals } = await setup(t, { resyncRetryMs: wait });
  const emitted = [await send(alice, 'alice, before')];
  // The first failure is resynced at once; the wait after each later one is the last one doubled.
  await send(alice, 'alice, tampered 1', true);
  assert.deepEqual(fetchesOf(alice).map((f) => f.at), [0], 'resynced at once');
  emitted.push(await send(alice, 'alice, after resync 1'));
  assert.deepEqual(seqsOf(alice), emitted, "after resync 1, alice's commits come through again");
  for (const [resyncs, expectedWait] of [[2, wait], [3, 2 * wait]] as const) {
    const lastFetch = fetchesOf(alice).at(-1)!.at;
    // Soon after the last resync: it waits. Her commits until the wait is over are withheld, up to
    // its last millisecond; the first one at its end starts the resync, whose snapshot holds it
    // (rev_not_newer); the one after chains from the snapshot and passes.
    await send(alice, `alice, tampered ${resyncs}`, true);
    await send(alice, `alice, within wait ${resyncs - 1}`);
    advanceTo(lastFetch + expectedWait - 1);
    await send(alice, `alice, at the last millisecond of wait ${resyncs - 1}`);
    assert.equal(fetchesOf(alice).length, resyncs - 1, `no resync ${resyncs} within the wait of ${expectedWait} ms`);
    advanceTo(lastFetch + expectedWait);
    await send(alice, `alice, as wait ${resyncs - 1} ends`);
    assert.equal(fetchesOf(alice).length, resyncs, `resync ${resyncs} as the wait of ${expectedWait} ms ends`);
    emitted.push(await send(alice, `alice, after resync ${resyncs}`));
    assert.deepEqual(seqsOf(alice), emitted, `after resync ${resyncs}, alice's commits come through again, and none within the wait`);
  }

  assert.deepEqual(fetchesOf(alice).map((f) => f.at), [0, wait, wait + 2 * wait], 'each resync waited for the last wait doubled, on the Verifier\'s clock');
  assert.deepEqual(deferrals(alice).map((l) => [l.resyncsInARow, l.resyncInMs]), [[1, wait], [2, 2 * wait]], 'each wait logged once, with the resyncs in a row before it');
  assert.equal(await metric('contrail_verify_resyncs_deferred_total'), 2);
  assert.equal(await metric('contrail_verify_failures_total{reason="out_of_sync"}'), 2 * 2, 'two commits within each wait, withheld');
  assert.equal(await metric('contrail_verify_failures_total{reason="rev_not_newer"}'), 2, 'the commits that started the resyncs after a wait, in their snapshots');
});

test('a repo that stays in sync for the longest wait starts over: its next failure is resynced at once, and the wait after it is the first one again', async (t) => {
  const wait = 100;
  const longest = 400;
  const { alice, advanceTo, metric, send, fetchesOf, deferrals } = await setup(t, { resyncRetryMs: wait, resyncRetryMaxMs: longest });
  await send(alice, 'alice, before');
  await send(alice, 'alice, tampered 1', true);
  await send(alice, 'alice, tampered 2', true);
  advanceTo(wait);
  await send(alice, 'alice, past the first wait: resynced');
  await send(alice, 'alice, after the second resync');
  assert.deepEqual(fetchesOf(alice).map((f) => f.at), [0, wait], 'two resyncs in a row');
  // Two resyncs in a row: a failure soon after would have the third wait for twice as long. alice
  // stays in sync for the longest wait since the second resync.
  advanceTo(wait + longest);
  await send(alice, 'alice, behaving after the longest wait');
  await send(alice, 'alice, tampered 3', true);
  assert.equal(fetchesOf(alice).length, 3, 'resynced at once');
  assert.equal(await metric('contrail_verify_resyncs_deferred_total'), 1, 'only the first run waited');
  await send(alice, 'alice, tampered 4', true);
  assert.deepEqual(
    deferrals(alice).map((l) => [l.resyncsInARow, l.resyncInMs]),
    [[1, wait], [1, wait]],
    'the run started over: one resync in a row before the second wait, and the first wait again, as before the first',
  );
});

test('a restart forgets the waits: a repo the relay keeps breaking is fetched at its first bad frame after it, then waits from the first wait again', async (t) => {
  const wait = 100;
  const { alice, advanceTo, send, fetchesOf, deferrals, restart, seqsOf } = await setup(t, { resyncRetryMs: wait });
  await send(alice, 'alice, before');
  await send(alice, 'alice, tampered 1', true);
  await send(alice, 'alice, tampered 2', true);
  advanceTo(wait);
  await send(alice, 'alice, as the first wait ends: resynced');
  await send(alice, 'alice, tampered 3', true);
  assert.deepEqual(fetchesOf(alice).map((f) => f.at), [0, wait], 'two resyncs in a row; the next waits until 3 * wait');
  advanceTo(wait + 1);
  restart();
  // The restarted gateway knows nothing of alice: her next commit passes, as any repo's first.
  const first = await send(alice, 'alice, after the restart');
  assert.deepEqual(seqsOf(alice), [first]);
  await send(alice, 'alice, tampered after the restart', true);
  await send(alice, 'alice, tampered again', true);
  assert.deepEqual(fetchesOf(alice).map((f) => f.at), [0, wait, wait + 1], 'the restarted gateway fetched the repo at its first bad frame, within the wait the run before had set');
  assert.deepEqual(
    deferrals(alice).map((l) => [l.resyncsInARow, l.resyncInMs]),
    [[1, wait], [2, 2 * wait], [1, wait]],
    'after the restart the run starts over: the first wait again',
  );
});
