/**
 * While a held repo's messages are released (its key resolved), those not delivered yet still
 * count as held (heldBelow(), heldRepos()): each is judged in turn, awaiting its check (a worker
 * round trip with --verify-workers, so event-loop turns pass and the Ingester commits between
 * them). Before, #release cleared the repo's held state first: a batch committed then saved the
 * upstream cursor at its watermark (above the held seqs, as later messages of other repos went
 * ahead) with no held window for them, and a crash before the rest were delivered resumed the
 * relay above them: never stored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { CheckPool, type Verifier } from '../src/verify/index.ts';
import type { UpstreamMessage } from '../src/upstream/index.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'q')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('while a held repo\'s messages are released, those not delivered yet still count as held (heldBelow / heldRepos)', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicereleasecursor00000000');
  const bob = await SignedRepo.create('did:plc:bobreleasecursor0000000000');
  let answer: () => void = () => {};
  const answered = new Promise<void>((resolve) => (answer = resolve));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    const key = did === alice.did ? alice.signingKey : bob.signingKey;
    // alice's document comes only when the test says so: her commits are held meanwhile.
    void (did === alice.did ? answered : Promise.resolve()).then(() => res.end(didDocument(did, key)));
  });
  const pool = new CheckPool(1, pino({ level: 'silent' }));
  t.after(() => pool.close());
  await pool.ready().catch(() => {});
  const seen: Array<{ seq: number; heldBelow: number | undefined; heldRepos: number }> = [];
  let verifier: Verifier | undefined;
  const deliver = (message: UpstreamMessage) => {
    if ('seq' in message) seen.push({ seq: message.seq, heldBelow: verifier!.heldBelow(), heldRepos: verifier!.heldRepos().length });
  };
  verifier = verifierUnderTest(t, plcUrl, { deliver, checkPool: pool }).verifier;

  // Bob's key is resolved first, so his later commit goes ahead of alice's held ones.
  verifier.handle(commitOf(await bob.commit(1, [post('bob 1')])));
  await waitUntil(() => seen.length === 1, 'bob\'s first commit');
  for (const seq of [2, 3, 4]) verifier.handle(commitOf(await alice.commit(seq, [post(`alice ${seq}`)])));
  verifier.handle(commitOf(await bob.commit(5, [post('bob 5')])));
  await waitUntil(() => seen.length === 2, 'bob\'s second commit, ahead of alice\'s held ones');
  assert.equal(verifier.heldBelow(), 2);

  answer();
  await waitUntil(() => seen.length === 5, 'alice\'s commits, released');
  await verifier.idle();
  const released = seen.slice(2);
  assert.deepEqual(released.map((s) => s.seq), [2, 3, 4]);
  // When seq 2 is delivered, 3 and 4 are not yet: what the Verifier reports held must keep the
  // saved cursor below 3 (it may still count the message being delivered).
  for (const { seq, heldBelow, heldRepos } of released.slice(0, -1)) {
    assert.ok(heldBelow !== undefined && heldBelow <= seq + 1, `when seq ${seq} was delivered, heldBelow() was ${heldBelow}, though seqs ${seq + 1}-4 were still to come`);
    assert.equal(heldRepos, 1, `when seq ${seq} was delivered, heldRepos() listed no repo`);
  }
});
