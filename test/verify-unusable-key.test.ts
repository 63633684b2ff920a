/**
 * Review (session 16): a DID document whose #atproto key decodes but is not a point on its curve
 * (K-256 or P-256) is cached like any other; importing the key then fails, and each commit of the
 * repo was counted as bad_commit ("… is not a point on secp256k1", "invalid curve point"), which
 * blames the relay's frame for what is the DID document's fault. It is unknown_key: the repo has no
 * usable signing key.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base58btc } from 'multiformats/bases/base58';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';

/** A did:key of the curve's multicodec whose 33 bytes are no point on it (x = 2^256 - 1 is past either field). */
function notAPoint(multicodec: number[]): string {
  const point = new Uint8Array(33).fill(0xff);
  point[0] = 0x02;
  return `did:key:${base58btc.encode(Uint8Array.from([...multicodec, ...point]))}`;
}

for (const [curve, multicodec] of [['K-256', [0xe7, 0x01]], ['P-256', [0x80, 0x24]]] as const) {
  test(`a DID document whose ${curve} #atproto key is not a point on the curve fails its repo's commits as unknown_key`, async (t) => {
    const alice = await SignedRepo.create(`did:plc:alicenotapoint${curve === 'K-256' ? 'k' : 'p'}0000000000`);
    const { url: plcUrl } = await localHttpServer(t, (_req, res) => res.end(didDocument(alice.did, notAPoint([...multicodec]))));
    const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl);
    verifier.handle(commitOf(await alice.commit(1, [{ action: 'create', collection: POST, rkey: '3laaaaaaaaaaa', record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } }])));
    await waitUntil(() => verifier.outOfSync(alice.did) !== undefined, 'alice\'s commit judged');
    assert.equal(delivered.length, 0);
    assert.equal(verifier.outOfSync(alice.did), 'unknown_key');
    assert.match(await registry.metrics(), /contrail_verify_failures_total\{reason="unknown_key"\} 1\n/);
  });
}
