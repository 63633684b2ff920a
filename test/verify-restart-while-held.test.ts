/**
 * With --verify, a restart while a repo is held (its key being resolved) reads the relay again from
 * below its held seq (README invariant 9): the held commit is stored after the restart, and the
 * other repos' events read again are not stored, nor sent to subscribers, a second time — the
 * commits (dropped by the per-DID rev check) and the #identity and #account events, which have no
 * rev (the saved cursor says which repos were held).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServerResponse } from 'node:http';
import { FakeRelay } from './support/fake-relay.ts';
import { accountFrame, identityFrame } from './support/frames.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { Gate, localHttpServer } from './support/local-http.ts';
import { SignedRepo, commitFrameOf, type Write } from './support/signed-repo.ts';
import { Subscription } from './support/subscribe-client.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'a')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('a restart while a repo is held re-reads the relay below it, but stores no #identity or #account event twice', async (t) => {
  const keys = new Map<string, string>();
  const gate = new Gate();
  const answer = (did: string, res: ServerResponse) => {
    const key = keys.get(did);
    if (!key) return res.writeHead(404).end();
    res.end(JSON.stringify({ id: did, verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: did, publicKeyMultibase: key.slice('did:key:'.length) }], service: [] }));
  };
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    void gate.passed.then(() => answer(did, res));
  });
  const relay = await FakeRelay.start();
  const dir = tempDir('contrail-verify-restart-');
  t.after(async () => {
    await Subscription.closeAll();
    await relay.stop();
    dir.remove();
  });
  const alice = await SignedRepo.create('did:plc:alicerestart0000000000000');
  const bob = await SignedRepo.create('did:plc:bobrestart000000000000000');
  const carol = 'did:plc:carolrestart00000000000000';
  keys.set(alice.did, alice.signingKey);
  keys.set(bob.did, bob.signingKey);

  let gateway = await startTestGateway(relay.url, dir.path, { verify: 'full', plcUrl });
  t.after(() => gateway.stop());
  await relay.waitForConnections(1);
  relay.push({ seq: 1, bytes: commitFrameOf(await alice.commit(1, [post('alice first')])) });
  let subscription = await Subscription.open(gateway.port, 'cursor=0');
  await subscription.waitForCount(1);

  // Bob's key cannot be fetched yet: his commit is held; carol's identity and account events go ahead.
  const open = gate.stall();
  relay.push({ seq: 2, bytes: commitFrameOf(await bob.commit(2, [post("bob's first")])) });
  relay.push({ seq: 3, bytes: identityFrame({ seq: 3, did: carol, handle: 'carol.example.com' }) });
  relay.push({ seq: 4, bytes: accountFrame({ seq: 4, did: carol, active: true }) });
  relay.push({ seq: 5, bytes: commitFrameOf(await alice.commit(5, [post('alice again')])) });
  await subscription.waitForCount(4);
  await subscription.close();
  await gateway.stop();
  open();

  gateway = await startTestGateway(relay.url, dir.path, { verify: 'full', plcUrl });
  subscription = await Subscription.open(gateway.port, 'cursor=0');
  await subscription.waitForCount(5); // bob's commit, read again after the restart
  await new Promise((resolve) => setTimeout(resolve, 500)); // anything else the restart read
  const seen = subscription.events.map((e) => (e.kind === 'commit' ? e.commit.record.text : `${e.kind} ${e.did}`));
  assert.deepEqual(seen, ['alice first', `identity ${carol}`, `account ${carol}`, 'alice again', "bob's first"]);
});
