/**
 * Under `--verify full` the sync 1.1 proof holds within a commit — undoing its ops from the signed
 * `data` lands on its `prevData` — and the chain ties it to the one before: `prevData` must be the
 * `data` of the repo's last verified commit. Without the chain a relay could keep a real signed
 * commit and present a different diff: no ops at all and `prevData` = `data`, so the commit's
 * writes never reached subscribers (or an old record re-announced as a create). Such a commit now
 * fails as broken_chain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CarBufferReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { IdentityCache, IdentityResolver } from '../src/identity/index.ts';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../src/upstream/index.ts';
import { createVerifyMetrics, Verifier } from '../src/verify/index.ts';
import { tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, commitFrameOf, type CommitBody, type Write } from './support/signed-repo.ts';

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'h')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

/** The same signed commit with its ops hidden: no ops, and prevData set to the commit's own data root. */
function withHiddenOps(body: CommitBody): CommitBody {
  const reader = CarBufferReader.fromBytes(body.blocks);
  const commitBlock = reader.blocks().find((b) => b.cid.equals(body.commit))!;
  const { data } = dagCbor.decode(commitBlock.bytes) as { data: CommitBody['prevData'] };
  return { ...body, ops: [], prevData: data };
}

test('--verify full: a real signed commit whose ops the relay hid (prevData = data, no ops) does not pass as the next commit of the chain', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicehiddenops000000000000');
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    res.end(JSON.stringify({ id: did, verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: did, publicKeyMultibase: alice.signingKey.slice('did:key:'.length) }], service: [] }));
  });
  const dir = tempDir('contrail-verify-chain-');
  const cache = new IdentityCache({ path: dir.path, maxEntries: 100 });
  t.after(async () => {
    await cache.close();
    dir.remove();
  });
  const registry = new Registry();
  const delivered: UpstreamMessage[] = [];
  const verifier = new Verifier({
    mode: 'full',
    identity: new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, failureTtlMs: 0 }),
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message) => delivered.push(message),
  });
  const commitOf = (body: CommitBody) => parseMessage(decodeFrame(commitFrameOf(body), 10_000_000));

  verifier.handle(commitOf(await alice.commit(1, [post('first')])));
  await waitUntil(() => delivered.length === 1, 'the first commit');
  // The real second commit creates a post; the relay sends it with the ops hidden.
  verifier.handle(commitOf(withHiddenOps(await alice.commit(2, [post('the post subscribers never see')]))));
  await waitUntil(async () => delivered.length === 2 || (await registry.metrics()).includes('contrail_verify_failures_total{'), 'the second commit to be judged');
  await verifier.idle();
  const second = delivered[1];
  assert.ok(
    second === undefined,
    `the second commit passed with ${second?.type === 'commit' ? second.ops.length : '?'} ops, though its prevData is not the first commit's data`,
  );
});
