/**
 * Review (session 16): the Verifier forgets the least recently active repos past maxRepos; one
 * forgotten while out of sync left the count of out-of-sync repos, but not the gauge
 * (contrail_verify_out_of_sync_repos), which kept counting it until some other repo's sync status
 * changed — an alert on it fired for a repo no longer known.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';

test('a repo forgotten (past maxRepos) while out of sync is no longer counted in contrail_verify_out_of_sync_repos', async (t) => {
  const repos = await Promise.all(['a', 'b', 'c'].map((name) => SignedRepo.create(`did:plc:forgottengauge${name}0000000000`)));
  const keys = new Map(repos.map((repo) => [repo.did, repo.signingKey]));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    res.end(didDocument(did, keys.get(did)!));
  });
  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl, { maxRepos: 2 });
  const gauge = async () => Number(/contrail_verify_out_of_sync_repos (\d+)/.exec(await registry.metrics())?.[1]);
  const [first, second, third] = repos as [SignedRepo, SignedRepo, SignedRepo];

  // The first repo's commit is forged (an unsigned frame): out of sync.
  verifier.handle(parseMessage(decodeFrame(commitFrame({ seq: 1, repo: first.did, rev: tidFor(1), ops: [] }), 10_000)));
  await waitUntil(() => verifier.outOfSync(first.did) !== undefined, 'the first repo out of sync');
  assert.equal(await gauge(), 1);

  // Two other repos are active since: the first is forgotten.
  let seq = 1;
  for (const repo of [second, third]) verifier.handle(commitOf(await repo.commit(++seq, [{ action: 'create', collection: POST, rkey: '3laaaaaaaaaaa', record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } }])));
  await waitUntil(() => delivered.length === 2, 'the other repos\' commits');
  await verifier.idle();
  assert.equal(verifier.outOfSync(first.did), undefined, 'the first repo is forgotten');
  assert.equal(await gauge(), 0);
});
