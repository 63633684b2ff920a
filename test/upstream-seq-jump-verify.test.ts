/**
 * Review (session 14): the seq-jump detection (upstream-seq-jump.test.ts) sits in the Ingester,
 * which sees only what the Verifier delivers. With --verify on, the Verifier drops every frame at
 * or below the highest seq it has seen as a reconnect's duplicate first (its own #highestSeq), so
 * after one frame far ahead every later frame is dropped before the Ingester can count it: no
 * log line, /ready 200, nothing stored — the silent stop the detection was made for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, commitFrameOf, type Write } from './support/signed-repo.ts';
import { httpGet, startRelayGateway, stats, stopRelayGateway } from './support/subscribe-client.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'a')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

test('with --verify, a frame whose seq jumps far ahead does not silently stop ingest of the frames after it', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicejumpverify0000000000');
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => {
    res.end(JSON.stringify({ id: alice.did, verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: alice.did, publicKeyMultibase: alice.signingKey.slice('did:key:'.length) }], service: [] }));
  });
  const h = await startRelayGateway({ verify: 'signatures', plcUrl }, { seqsBehindMs: 1_000 });
  t.after(() => stopRelayGateway(h));
  const { relay, gateway } = h;
  let seq = 1;
  relay.push({ seq, bytes: commitFrameOf(await alice.commit(seq, [post('before the jump')])) });
  await waitUntil(async () => (await stats(gateway.port)).eventCount === 1, 'the first commit to be stored');

  const jump = 900_000_000_000;
  relay.push({ seq: jump, bytes: commitFrameOf(await alice.commit(jump, [post('far ahead')])) });
  await waitUntil(async () => (await stats(gateway.port)).eventCount === 2, 'the commit far ahead to be stored');

  // The relay goes on with its own numbering: every frame now comes below the stored seq.
  let ready = await httpGet(gateway.port, '/ready');
  let stored = 0;
  await waitUntil(
    async () => {
      seq++;
      relay.push({ seq, bytes: commitFrameOf(await alice.commit(seq, [post(`after the jump ${seq}`)])) });
      await new Promise((resolve) => setTimeout(resolve, 100));
      ready = await httpGet(gateway.port, '/ready');
      stored = (await stats(gateway.port)).eventCount - 2;
      return ready.status !== 200 || stored > 0;
    },
    'the stream to be stored or /ready to say it is not',
    30_000,
  );
  assert.ok(
    stored > 0 || ready.status !== 200,
    `${seq - 1} frames after the jump: ${stored} stored, and /ready answers ${ready.status}: the stream is dropped while the gateway says it is fine`,
  );
  assert.match(ready.body.toString(), /at or below seq 900000000000/, '/ready names the seq the frames fall below');

  seq = jump + 1;
  relay.push({ seq, bytes: commitFrameOf(await alice.commit(seq, [post('above the jump')])) });
  await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready to recover once a frame above the highest seq read comes');
});
