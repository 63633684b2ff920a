/**
 * Under `--verify full` the sync 1.1 proof holds within a commit — undoing its ops from the signed
 * `data` lands on its `prevData` — and the chain ties it to the one before: `prevData` must be the
 * `data` of the repo's last verified commit. Without the chain a relay could keep a real signed
 * commit and present a different diff: no ops at all and `prevData` = `data`, so the commit's
 * writes never reached subscribers (or an old record re-announced as a create). Such a commit now
 * fails as broken_chain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CarBufferReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
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

test('--verify full: a real signed commit whose ops the relay hid (prevData = data, no ops) does not pass as the next commit of the chain', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicehiddenops000000000000');
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey)));
  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl);

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
