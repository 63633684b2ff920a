/**
 * Review (session 16): a repo whose messages are held (its key being resolved, or a resync running)
 * and whose commits passed the per-repo byte bound loses the commits past it — the repo goes out of
 * sync and is resynced, and the snapshot holds what they changed. Its #identity and #account events
 * were dropped the same way (and counted as verification failures), though no check applies to them
 * and no resync brings them back: an account taken down while the PLC directory was slow never
 * reached a subscriber. They stay held in order, and are delivered when the repo is released.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../src/upstream/index.ts';
import { accountFrame, identityFrame } from './support/frames.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';

test('a held repo past its byte bound still has its #identity and #account events delivered, in order, when it is released', async (t) => {
  const alice = await SignedRepo.create('did:plc:aliceoverflowaccount00000');
  let openDirectory!: () => void;
  const directoryOpen = new Promise<void>((resolve) => (openDirectory = resolve));
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => void directoryOpen.then(() => res.end(didDocument(alice.did, alice.signingKey))));
  const bodies = [];
  for (let seq = 1; seq <= 3; seq++) bodies.push(await alice.commit(seq, [{ action: 'create', collection: POST, rkey: `3l${String(seq).padStart(11, 'a')}`, record: { $type: POST, text: `post ${seq}`, createdAt: '2026-12-01T00:00:00.000Z' } }]));
  const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl, {
    // Room for the first commit only (each counted as its CAR and 256 bytes for the rest).
    maxHeldBytesPerRepo: bodies[0]!.blocks.byteLength + 256,
  });
  const event = (frame: Uint8Array) => parseMessage(decodeFrame(frame, 10_000));

  verifier.handle(commitOf(bodies[0]!));
  verifier.handle(commitOf(bodies[1]!)); // past the bound: dropped, the repo will be out of sync
  verifier.handle(event(identityFrame({ seq: 3, did: alice.did, handle: 'alice.example.com' })));
  verifier.handle(commitOf({ ...bodies[2]!, seq: 4 }));
  verifier.handle(event(accountFrame({ seq: 5, did: alice.did, active: false, status: 'takendown' })));
  await verifier.idle();
  openDirectory();
  await waitUntil(() => verifier.outOfSync(alice.did) !== undefined, 'alice released, then out of sync');

  const seen = delivered.map((message: UpstreamMessage) => ('seq' in message ? `${message.type} ${message.seq}` : message.type));
  assert.deepEqual(seen, ['commit 1', 'identity 3', 'account 5']);
  const metrics = await registry.metrics();
  assert.match(metrics, /contrail_verify_failures_total\{reason="held_overflow"\} 1\n/);
  assert.match(metrics, /contrail_verify_failures_total\{reason="out_of_sync"\} 1\n/, 'the commit after the overflow, not the events');
});
