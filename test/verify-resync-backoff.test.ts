/**
 * A successful resync is not free to repeat. Any one bad frame of a repo forces a resync (the
 * whole repo fetched from its PDS with com.atproto.sync.getRepo), so a relay sending one per repo
 * per second would make contrail download every repo it names once a second. A repo that fails
 * again soon after a resync waits, as after a failed resync: its commits are withheld
 * (out_of_sync) until one arriving --verify-resync-retry after that resync starts the next, the
 * wait doubling with each resync in a row so followed, and starting over once the repo has stayed
 * in sync for the longest wait. Other repos do not wait with it. The fetches are counted at the PDS.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import type { UpstreamMessage } from '../src/upstream/index.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { withWrongPrevData } from './support/tamper.mjs';
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

/** alice and bob, a PLC directory and a PDS serving their repos as they are when asked, and a Verifier resyncing from it. */
async function setup(t: TestContext, options: { resyncRetryMs: number; resyncRetryMaxMs?: number }) {
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((name) => SignedRepo.create(`did:plc:${name}backoff`.padEnd(32, '0'))));
  const repos = new Map([alice!, bob!].map((repo) => [repo.did, repo]));
  const fetches: { did: string; at: number }[] = [];
  const { url: pdsUrl } = await localHttpServer(t, (req, res) => {
    const did = new URL(req.url!, 'http://pds').searchParams.get('did') ?? '';
    fetches.push({ did, at: Date.now() });
    void (async () => {
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
      for await (const chunk of repos.get(did)!.car()) res.write(chunk);
      res.end();
    })();
  });
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    res.end(didDocument(did, repos.get(did)!.signingKey, pdsUrl));
  });
  const logs: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const { verifier, delivered, registry, resyncsStarted } = verifierUnderTest(t, plcUrl, { resyncFrom: pdsUrl, logger, ...options });
  const metric = async (series: string) => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.split(' ')[1]) : 0;
  };
  const resyncsEnded = async () => (await metric('contrail_verify_resyncs_total{result="resynced"}')) + (await metric('contrail_verify_resyncs_total{result="failed"}'));
  let seq = 0;
  /** The relay passes on one commit of `repo` (tampered if told), and it is judged, with any resync it started. */
  const send = async (repo: SignedRepo, text: string, tampered = false): Promise<number> => {
    const body = await repo.commit(++seq, [post(text)]);
    verifier.handle(commitOf(tampered ? withWrongPrevData(body) : body));
    // Judged (after its repo's key is resolved, the first time), and any resync it started ended.
    await waitUntil(async () => verifier.heldRepos().length === 0 && (await resyncsEnded()) === resyncsStarted(), `commit ${body.seq} to be judged`);
    await verifier.idle();
    return body.seq;
  };
  /** alice makes commits that the relay passes on untouched, one each poll, until `done`; their seqs. */
  const aliceBehavesUntil = async (done: () => boolean, what: string): Promise<number[]> => {
    const seqs: number[] = [];
    await waitUntil(async () => done() || (seqs.push(await send(alice!, `alice, behaving ${seqs.length}`)), false), what);
    return seqs;
  };
  const seqsOf = (repo: SignedRepo) => delivered.filter((m: UpstreamMessage) => m.type === 'commit' && m.repo === repo.did).map((m) => ('seq' in m ? m.seq : undefined));
  const fetchesOf = (repo: SignedRepo) => fetches.filter((f) => f.did === repo.did);
  const deferrals = (repo: SignedRepo) => logs.filter((l) => l.msg === DEFERRED && l.did === repo.did);
  return { alice: alice!, bob: bob!, verifier, metric, send, aliceBehavesUntil, seqsOf, fetchesOf, deferrals };
}

test('a relay that breaks one repo over and over makes contrail fetch it once per wait, not once per bad commit; other repos are unaffected', async (t) => {
  const wait = 3_600_000; // longer than the test: every fetch of alice past the first would be one too many
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
  assert.equal(verifier.outOfSync(alice.did), 'bad_inversion');
  assert.equal(await metric('contrail_verify_resyncs_deferred_total'), 1);
  assert.equal(deferrals(alice).length, 1, 'the wait is logged once, not once per commit');
  assert.equal(deferrals(alice)[0]!.resyncsInARow, 1);
  assert.ok(deferrals(alice)[0]!.resyncInMs! <= wait);
  assert.deepEqual(seqsOf(bob), bobSeqs, "bob's commits all pass, in order, while alice waits");
  assert.equal(verifier.outOfSync(bob.did), undefined);
});

test('after its wait a repo that behaves again is resynced and its commits come through; each resync in a row followed by a failure doubles the next wait', async (t) => {
  const wait = 200;
  const { alice, metric, send, aliceBehavesUntil, seqsOf, fetchesOf, deferrals } = await setup(t, { resyncRetryMs: wait });
  const emitted = [await send(alice, 'alice, before')];
  let withheld = 0;
  for (let resyncs = 1; resyncs <= 3; resyncs++) {
    // Tampered: resynced at once the first time; later, soon after the last resync, it waits.
    await send(alice, `alice, tampered ${resyncs}`, true);
    // alice's commits during the wait are withheld; the first one past it starts the resync, whose
    // snapshot holds it (rev_not_newer); the one after chains from the snapshot and passes.
    const behaving = await aliceBehavesUntil(() => fetchesOf(alice).length === resyncs, `resync ${resyncs}`);
    withheld += Math.max(behaving.length - 1, 0);
    emitted.push(await send(alice, `alice, after resync ${resyncs}`));
    assert.deepEqual(seqsOf(alice), emitted, `after resync ${resyncs}, alice's commits come through again`);
  }

  const [first, second, third] = fetchesOf(alice).map((f) => f.at);
  assert.ok(second! - first! >= wait, `the second fetch came ${second! - first!} ms after the first: within the wait of ${wait} ms`);
  assert.ok(third! - second! >= 2 * wait, `the third fetch came ${third! - second!} ms after the second: within the doubled wait of ${2 * wait} ms`);
  assert.deepEqual(deferrals(alice).map((l) => l.resyncsInARow), [1, 2], 'each wait logged once, with the resyncs in a row before it');
  assert.equal(await metric('contrail_verify_resyncs_deferred_total'), 2);
  assert.equal(await metric('contrail_verify_failures_total{reason="out_of_sync"}'), withheld, 'every commit within a wait was withheld, none emitted');
  assert.equal(await metric('contrail_verify_failures_total{reason="rev_not_newer"}'), 2, 'the commits that started the resyncs after a wait, in their snapshots');
});

test('a repo that stays in sync for the longest wait starts over: its next failure is resynced at once, and the wait after it is the first one again', async (t) => {
  const wait = 100;
  const longest = 400;
  const { alice, metric, send, aliceBehavesUntil, fetchesOf, deferrals } = await setup(t, { resyncRetryMs: wait, resyncRetryMaxMs: longest });
  await send(alice, 'alice, before');
  await send(alice, 'alice, tampered 1', true);
  await send(alice, 'alice, tampered 2', true);
  await aliceBehavesUntil(() => fetchesOf(alice).length === 2, 'the second resync, past the first wait');
  const secondResyncEnded = Date.now();
  // Two resyncs in a row: a failure now would wait twice as long. alice behaves for the longest wait.
  await aliceBehavesUntil(() => Date.now() - secondResyncEnded >= longest, 'the longest wait to pass');
  await send(alice, 'alice, tampered 3', true);
  assert.equal(fetchesOf(alice).length, 3, 'resynced at once');
  assert.equal(await metric('contrail_verify_resyncs_deferred_total'), 1, 'only the first run waited');
  await send(alice, 'alice, tampered 4', true);
  assert.deepEqual(deferrals(alice).map((l) => l.resyncsInARow), [1, 1], 'the run started over: one resync in a row before the second wait, as before the first');
});
