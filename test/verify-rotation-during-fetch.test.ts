/**
 * A key rotation announced by #identity while a fetch of the DID document begun before the
 * rotation is still in flight: the #identity's refresh (and a bad-signature refresh) does not join
 * that older fetch but fetches again, so the next commit, signed with the new key, is delivered and
 * the repo stays in sync; when the older fetch's answer (the pre-rotation document) finally
 * arrives, it does not replace the newer document in the cache.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Secp256k1Keypair } from '@atproto/crypto';
import { Registry } from 'prom-client';
import { createIdentityMetrics, IdentityResolver } from '../src/identity/index.ts';
import { cleanup } from './support/cleanup.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, identityCacheUnderTest, identityEventOf, resyncWithoutPds, rotatingDirectory, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'a')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('a rotation announced by #identity while an older fetch of the document is in flight: the next commit, signed with the new key, is not dropped', async (t) => {
  const alice = await SignedRepo.create('did:plc:aliceinflight000000000000');
  const { url: plcUrl, directory } = await rotatingDirectory(t, alice.signingKey);

  const outOfSync: string[] = [];
  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl, { resync: resyncWithoutPds(outOfSync) });
  const identityEvent = (seq: number) => identityEventOf(alice.did, seq);

  verifier.handle(commitOf(await alice.commit(1, [post('before')])));
  await waitUntil(() => delivered.length === 1, 'the first commit');

  // An #identity (a handle change, say) starts a refresh; the directory is slow to answer it.
  directory.holdNext = true;
  verifier.handle(identityEvent(2));
  await waitUntil(() => directory.held.length === 1, 'the refresh to reach the directory');

  // Then the key rotates: the directory has the new key, the relay sends #identity and a commit signed with it.
  await new Promise((resolve) => setTimeout(resolve, 5)); // the cached document predates the commit
  alice.rotateKey(await Secp256k1Keypair.create());
  directory.key = alice.signingKey;
  verifier.handle(identityEvent(3));
  verifier.handle(commitOf(await alice.commit(4, [post('after rotation')])));
  await verifier.idle();

  // The slow answer (the document from before the rotation) arrives.
  for (const answer of directory.held) answer();
  await waitUntil(async () => delivered.length === 4 || outOfSync.length > 0 || (await registry.metrics()).includes('contrail_verify_failures_total{reason="bad_signature"} 1'), 'the commit to be judged', 5_000);
  await verifier.idle();
  assert.deepEqual(outOfSync, [], 'the repo went out of sync');
  assert.deepEqual(
    delivered.map((m) => ('seq' in m ? m.seq : undefined)),
    [1, 2, 3, 4],
    'the commit signed with the rotated key is delivered',
  );
});

test('a refresh asked for after a fetch began does not join it, and the older document that arrives last does not replace the newer one', async (t) => {
  const did = 'did:plc:aliceinflight000000000000';
  const [oldKey, newKey] = [(await Secp256k1Keypair.create()).did(), (await Secp256k1Keypair.create()).did()];
  const { url: plcUrl, directory } = await rotatingDirectory(t, oldKey);
  const cache = identityCacheUnderTest(cleanup(t), 'contrail-identity-refresh-');
  const registry = new Registry();
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, metrics: createIdentityMetrics(registry) });

  directory.holdNext = true;
  const older = identity.refresh(did);
  await waitUntil(() => directory.held.length === 1, 'the first fetch to reach the directory');
  await new Promise((resolve) => setTimeout(resolve, 5));
  directory.key = newKey;
  assert.equal((await identity.refresh(did)).signingKey, newKey, 'a refresh asked for now fetches again');
  directory.held[0]!();
  assert.equal((await older).signingKey, oldKey, 'the older fetch answers its own callers');
  await waitUntil(async () => (await registry.metrics()).includes('contrail_identity_in_flight 0'), 'the older fetch to end');
  assert.equal(identity.cached(did)?.signingKey, newKey, 'the cache keeps the newer document');
});
