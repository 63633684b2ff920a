/**
 * Review (session 16): a key rotation while the repo's messages are held — its first commit waits
 * for a DID document fetched from before the rotation — then an #identity and a commit signed with
 * the new key. The held #identity started no refresh (held messages are only queued), and a
 * released commit whose signature failed was never given one ("the document was fetched after it
 * arrived"), though this document was fetched before it: the valid commit was dropped as
 * bad_signature and the repo sent out of sync. A released message whose document predates it gets
 * the one refresh any other message gets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Secp256k1Keypair } from '@atproto/crypto';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, identityEventOf, resyncWithoutPds, rotatingDirectory, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'h')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('a key rotated while the repo waits for its first DID document: the commit signed with the new key is delivered once that document (from before the rotation) arrives', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicerotatedwhileheld0000');
  const { url: plcUrl, directory } = await rotatingDirectory(t, alice.signingKey);
  directory.holdNext = true;
  const outOfSync: string[] = [];
  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl, { resync: resyncWithoutPds(outOfSync) });
  const identityEvent = (seq: number) => identityEventOf(alice.did, seq);

  // Alice's first commit: her document is fetched, and the directory is slow to answer.
  verifier.handle(commitOf(await alice.commit(1, [post('before')])));
  await waitUntil(() => directory.held.length === 1, 'the fetch to reach the directory');

  // Her key rotates: the directory has the new key; the relay sends #identity and a commit signed with it.
  await new Promise((resolve) => setTimeout(resolve, 5)); // the document being fetched predates the commit
  alice.rotateKey(await Secp256k1Keypair.create());
  directory.key = alice.signingKey;
  verifier.handle(identityEvent(2));
  verifier.handle(commitOf(await alice.commit(3, [post('after rotation')])));
  await verifier.idle();

  // The slow answer (the document from before the rotation) arrives.
  for (const answer of directory.held) answer();
  const badSignatures = async () => (await registry.metrics()).includes('contrail_verify_failures_total{reason="bad_signature"}');
  await waitUntil(async () => delivered.length === 3 || outOfSync.length > 0 || (await badSignatures()), 'the commits to be judged', 5_000);
  await verifier.idle();
  assert.deepEqual(outOfSync, [], 'the repo went out of sync');
  assert.deepEqual(
    delivered.map((m) => ('seq' in m ? m.seq : undefined)),
    [1, 2, 3],
    'the commit signed with the rotated key is delivered',
  );
  assert.equal(directory.requests, 2, 'one fetch, and one refresh for the commit its document predates');
});
