/**
 * Review (session 18): a commit whose signature fails with the cached key gets the DID document
 * fetched again once, if that document may predate the commit (the key may have rotated since):
 * the Verifier asked only when the document's fetch began in an earlier millisecond than the
 * commit arrived. One begun in the same millisecond may still have read the directory before the
 * rotation — a relay and a directory on loopback rotate, sign and deliver within one — and the
 * valid commit was then dropped as bad_signature and the repo sent out of sync, with no refresh.
 * The same class as last session's CI failure, where a refresh asked for in the millisecond a
 * failed fetch began was answered by it. Our clock stands still here (node:test's Date mock), so
 * everything happens in one millisecond, on every run.
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { Secp256k1Keypair } from '@atproto/crypto';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, rotatingDirectory, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'm')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('a commit signed with a rotated key, arriving in the millisecond the cached document was fetched, gets the document fetched again and is delivered', { timeout: 60_000 }, async (t) => {
  const alice = await SignedRepo.create('did:plc:alicesamemillisecond00000');
  const { url: plcUrl, directory } = await rotatingDirectory(t, alice.signingKey);
  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl);
  const newKey = await Secp256k1Keypair.create();
  const failures = async () => /^contrail_verify_failures_total\{reason="bad_signature"\} [1-9]/m.test(await registry.metrics());

  mock.timers.enable({ apis: ['Date'], now: Date.now() });
  t.after(() => mock.timers.reset());

  // Alice's first commit: her document (the key before the rotation) is fetched and cached.
  verifier.handle(commitOf(await alice.commit(1, [post('before')])));
  await waitUntil(() => delivered.length === 1, 'the first commit to be delivered');
  assert.equal(directory.requests, 1);

  // Her key rotates: the directory has the new key, and a commit signed with it arrives.
  directory.key = newKey.did();
  alice.rotateKey(newKey);
  verifier.handle(commitOf(await alice.commit(2, [post('after rotation')])));
  await waitUntil(async () => delivered.length === 2 || (await failures()), 'the second commit to be delivered or failed');
  assert.equal(delivered.length, 2, `the commit signed with the rotated key is delivered (directory asked ${directory.requests} times)`);
  assert.equal(directory.requests, 2, 'after the document was fetched again');
  assert.equal(verifier.outOfSync(alice.did), undefined, 'and the repo stays in sync');
});
