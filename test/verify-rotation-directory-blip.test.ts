/**
 * A commit whose signature fails with the cached key sends its repo back to waiting while the DID
 * document is fetched again: a rotated key never drops a valid commit. That fetch was made once:
 * a directory that failed it in passing (a 503, a rate limit's 429) failed the commit as
 * bad_signature, sent the repo out of sync, and the rotated key stayed unknown until the failure
 * was forgotten. A repo's first document is asked for again after such a failure
 * (test/verify-first-document-directory-blip.test.ts); so must this refresh be.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Secp256k1Keypair } from '@atproto/crypto';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
const post = (rkey: string): Write => ({ action: 'create', collection: POST, rkey, record: { $type: POST, text: rkey, createdAt: '2026-12-01T00:00:00.000Z' } });

for (const failure of [503, 429]) {
  test(`a rotated key's refresh answered ${failure} once, then the document: the commit signed with the new key is emitted`, async (t) => {
    const alice = await SignedRepo.create('did:plc:alicerotationblip000000000');
    const directory = { key: alice.signingKey, failNext: false, requests: 0 };
    const { url } = await localHttpServer(t, (_req, res) => {
      directory.requests++;
      if (directory.failNext) {
        directory.failNext = false;
        res.writeHead(failure).end();
      } else {
        res.end(didDocument(alice.did, directory.key));
      }
    });
    // The resolver's own failure memory, as the gateway runs it.
    const { verifier, delivered, registry } = verifierUnderTest(t, url, { mode: 'signatures', failureTtlMs: 30_000 });
    verifier.handle(commitOf(await alice.commit(1, [post('3laaaaaaaaaa2')])));
    await waitUntil(() => delivered.length === 1, 'the first commit');

    await new Promise((resolve) => setTimeout(resolve, 5)); // the cached document predates the next commit
    alice.rotateKey(await Secp256k1Keypair.create());
    directory.key = alice.signingKey;
    directory.failNext = true;
    verifier.handle(commitOf(await alice.commit(2, [post('3laaaaaaaaaa3')])));
    await waitUntil(async () => delivered.length === 2 || /contrail_verify_failures_total\{reason="bad_signature"\} [1-9]/.test(await registry.metrics()), 'the commit emitted, or failed', 30_000);
    assert.deepEqual(delivered.map((message) => message.type === 'commit' && message.seq), [1, 2], 'the commit signed with the rotated key is emitted');
    assert.equal(verifier.outOfSync(alice.did), undefined, 'the repo is in sync');
    assert.equal(directory.requests, 3, 'the directory was asked again after its failure');
  });
}
