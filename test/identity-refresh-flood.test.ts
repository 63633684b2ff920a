/**
 * A burst of #identity events for one cached DID is one DID-document fetch per round trip, not
 * one per event. refresh(did, notBefore) joins a running fetch only if its request began at or
 * after notBefore (for a rotation during a slow fetch), so each event arriving while the document
 * is fetched asks for a newer one; before, each started a fetch: up to --identity concurrency at
 * once and 10,000 queued, ahead of every other DID's resolution (new repos' commits held
 * meanwhile, then failed as 'overloaded'). Now a DID has at most two fetches running, and one
 * not begun yet, which every later refresh joins (its document is fetched after they all arrived).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { identityFrame } from './support/frames.ts';
import { Gate, localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
const post = (): Write => ({ action: 'create', collection: POST, rkey: '3lfloodfloodf', record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } });

test('a burst of #identity events for one DID does not become one DID-document fetch per event', async (t) => {
  const alice = await SignedRepo.create('did:plc:aliceidentityflood0000000');
  let requests = 0;
  const gate = new Gate();
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    requests++;
    const body = didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey);
    void gate.passed.then(() => res.end(body));
  });
  const { verifier, delivered } = verifierUnderTest(t, plcUrl);
  verifier.handle(commitOf(await alice.commit(1, [post()])));
  await waitUntil(() => delivered.length === 1, 'alice\'s key cached by her first commit');
  const before = requests;

  // The documents now come only when the test lets them: however long this loaded machine takes
  // over the burst, no fetch ends during it (a third fetch begins when the second ends).
  const answer = gate.stall();
  for (let seq = 2; seq <= 31; seq++) {
    verifier.handle(parseMessage(decodeFrame(identityFrame({ seq, did: alice.did, handle: `alice${seq}.test` }), 10_000)));
    await sleep(5);
  }
  await waitUntil(() => delivered.length === 31, 'the #identity events');
  await sleep(300); // room for a fetch too many to reach the directory: it would be counted
  const fetched = requests - before;
  assert.ok(fetched <= 2, `30 #identity events for one DID, its document not come yet, started ${fetched} fetches of it`);
  answer();
});
