/**
 * `full`'s chain (prevData = the last verified commit's data) holds across a resync: the resync
 * hands back its snapshot's signed MST root, and the repo's next commit must chain from it.
 * Before, the chain was off for a repo's first commit after a resync, and a relay can force a
 * resync at will with any one bad frame for the repo: so it could hide the ops of every other
 * commit (hide commit 2: broken_chain, resync at rev 2; then hide commit 3, which passed with
 * no ops, its post never reaching a subscriber).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CarBufferReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { localHttpServer } from './support/local-http.ts';
import { answerSync } from './support/repo-host.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type CommitBody, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'r')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

function withHiddenOps(body: CommitBody): CommitBody {
  const reader = CarBufferReader.fromBytes(body.blocks);
  const commitBlock = reader.blocks().find((b) => b.cid.equals(body.commit))!;
  const { data } = dagCbor.decode(commitBlock.bytes) as { data: CommitBody['prevData'] };
  return { ...body, ops: [], prevData: data };
}

test('--verify full: the first commit after a resync is chained to the resynced snapshot (a relay cannot force a resync, then hide the next commit\'s ops)', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicechainresync0000000000');
  // Her PDS serves her repo as it is when asked (at rev 2 here), resynced as the gateway does.
  const { url: pdsUrl } = await localHttpServer(t, (req, res) => void answerSync(req, res, (did) => (did === alice.did ? alice : undefined)));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey, pdsUrl)));
  const { verifier, delivered, registry, resyncsStarted } = verifierUnderTest(t, plcUrl, { resyncFromPds: true });

  verifier.handle(commitOf(await alice.commit(1, [post('first')])));
  await waitUntil(() => delivered.length === 1, 'the first commit');
  // Commit 2 hidden: broken_chain, the repo goes out of sync and is resynced (the PDS has rev 2).
  verifier.handle(commitOf(withHiddenOps(await alice.commit(2, [post('second')]))));
  await waitUntil(() => resyncsStarted() === 1, 'the resync');
  await verifier.idle();
  await waitUntil(async () => (await registry.metrics()).includes('contrail_verify_resyncs_total{result="resynced"} 1'), 'the resync to end');
  await verifier.idle();
  assert.equal(delivered.length, 1, 'the hidden commit 2 was withheld');
  // Commit 3, a real signed commit creating a post, sent with its ops hidden.
  verifier.handle(commitOf(withHiddenOps(await alice.commit(3, [post('the post subscribers never see')]))));
  await waitUntil(async () => delivered.length === 2 || /contrail_verify_failures_total\{reason="broken_chain"\} 2/.test(await registry.metrics()), 'commit 3 to be judged');
  await verifier.idle();
  const third = delivered[1];
  assert.ok(third === undefined, `commit 3 passed with ${third?.type === 'commit' ? third.ops.length : '?'} ops: its prevData is its own data, not the resynced snapshot's data`);
});
