/**
 * Under `--verify full` the sync 1.1 proof holds within a commit — undoing its ops from the signed
 * `data` lands on its `prevData` — and the chain ties it to the one before: `prevData` must be the
 * `data` of the repo's last verified commit. Without the chain a relay could keep a real signed
 * commit and present a different diff: no ops at all and `prevData` = `data`, so the commit's
 * writes never reached subscribers (or an old record re-announced as a create). Such a commit now
 * fails as broken_chain.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CarBufferReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { pino } from 'pino';
import { CheckPool } from '../src/verify/index.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type CommitBody, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'h')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

/** The same signed commit with its ops hidden: no ops, and prevData set to the commit's own data root. */
function withHiddenOps(body: CommitBody): CommitBody {
  const reader = CarBufferReader.fromBytes(body.blocks);
  const commitBlock = reader.blocks().find((b) => b.cid.equals(body.commit))!;
  const { data } = dagCbor.decode(commitBlock.bytes) as { data: CommitBody['prevData'] };
  return { ...body, ops: [], prevData: data };
}

/** A Verifier with its checks on the main thread, or on one worker thread (started before the test's waits). */
async function verifierOn(t: TestContext, plcUrl: string, workers: number) {
  if (!workers) return verifierUnderTest(t, plcUrl);
  const checkPool = new CheckPool(workers, pino({ level: 'silent' }));
  t.after(() => checkPool.close());
  await checkPool.ready();
  return verifierUnderTest(t, plcUrl, { checkPool });
}

for (const workers of [0, 1]) {
  test(`--verify full, checks on ${workers ? 'a worker thread' : 'the main thread'}: a real signed commit whose ops the relay hid (prevData = data, no ops) does not pass as the next commit of the chain`, async (t) => {
    const alice = await SignedRepo.create(`did:plc:alicehiddenops0000000000${workers}0`);
    const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey)));
    const { verifier, delivered, registry } = await verifierOn(t, plcUrl, workers);

    verifier.handle(commitOf(await alice.commit(1, [post('first')])));
    await waitUntil(() => delivered.length === 1, 'the first commit');
    // The real second commit creates a post; the relay sends it with the ops hidden.
    verifier.handle(commitOf(withHiddenOps(await alice.commit(2, [post('the post subscribers never see')]))));
    await waitUntil(async () => delivered.length === 2 || (await registry.metrics()).includes('contrail_verify_failures_total{'), 'the second commit to be judged');
    await verifier.idle();
    const second = delivered[1];
    assert.ok(
      second === undefined,
      `the second commit passed with ${second?.type === 'commit' ? second.ops.length : '?'} ops, though its prevData is not the first commit's data`,
    );
  });
}

test('--verify full on a worker: the chain keeps the MST root the worker checked; the main thread does not read the commit block again', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicerootfromworker0000000');
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey)));
  const { verifier, delivered, registry } = await verifierOn(t, plcUrl, 1);

  verifier.handle(commitOf(await alice.commit(1, [post('first')])));
  await waitUntil(() => delivered.length === 1, 'the first commit (its key fetched and cached)');
  // With the key cached, the second commit's check starts as it is handed in, and its bytes are
  // copied for the worker in this turn's microtasks. Then this thread's copy of its CAR is wiped:
  // the root the chain keeps can only be the worker's.
  const second = commitOf(await alice.commit(2, [post('second')]));
  assert.equal(second.type, 'commit');
  verifier.handle(second);
  await null;
  if (second.type === 'commit') second.proof.car.bytes.fill(0);
  await waitUntil(() => delivered.length === 2, 'the second commit, checked on the worker');
  // The third commit is real, its ops hidden: only the second's root tells it from a true successor.
  verifier.handle(commitOf(withHiddenOps(await alice.commit(3, [post('the post subscribers never see')]))));
  await waitUntil(async () => delivered.length === 3 || (await registry.metrics()).includes('contrail_verify_failures_total{'), 'the third commit to be judged');
  await verifier.idle();
  assert.equal(delivered.length, 2, 'the third commit passed: the chain held no root for the second');
  assert.match(await registry.metrics(), /contrail_verify_failures_total\{reason="broken_chain"\} 1/);
});
