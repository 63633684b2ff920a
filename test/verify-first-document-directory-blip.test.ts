/**
 * Under --verify a repo seen for the first time waits for its DID document, its messages held.
 * A directory that fails once (a 503, a rate limit's 429, a timeout) failed them all as
 * `unknown_key`, and the repo went out of sync: its commits were never emitted, and the failure,
 * remembered for 30 s, failed the resync's lookup and the repo's next commits too. One passing
 * failure of the directory lost a new repo's writes. The first document is asked for again,
 * after a short wait, before the held messages are judged; a directory that stays down fails
 * them as before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
const post = (rkey: string) => ({ action: 'create' as const, collection: POST, rkey, record: { $type: POST, text: rkey, createdAt: '2026-12-01T00:00:00.000Z' } });

for (const failure of [503, 429]) {
  test(`a directory that answers a repo's first lookup ${failure}, then its document: the held commit is verified and emitted`, async (t) => {
    const alice = await SignedRepo.create('did:plc:alicefirstlookupfailed0000');
    let requests = 0;
    const { url } = await localHttpServer(t, (_req, res) => {
      if (++requests === 1) res.writeHead(failure).end();
      else res.end(didDocument(alice.did, alice.signingKey));
    });
    // The resolver's own failure memory, as the gateway runs it.
    const { verifier, delivered, registry } = verifierUnderTest(t, url, { failureTtlMs: 30_000 });
    verifier.handle(commitOf(await alice.commit(1, [post('3laaaaaaaaaa2')])));
    await waitUntil(async () => delivered.length > 0 || /contrail_verify_failures_total\{reason="unknown_key"\} [1-9]/.test(await registry.metrics()), 'the commit emitted, or failed', 30_000);
    assert.deepEqual(delivered.map((message) => message.type === 'commit' && message.seq), [1], 'the commit is emitted once the directory answers');
    assert.equal(requests, 2, 'the directory was asked again');
    assert.equal(verifier.outOfSync(alice.did), undefined, 'the repo is in sync');
  });
}
