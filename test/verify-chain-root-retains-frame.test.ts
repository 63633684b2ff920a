/**
 * Review (session 14): in `full` mode the Verifier keeps, per repo, the MST root of its last
 * verified commit (the chain). Checked on the main thread (--verify-workers 0, or a worker that
 * died), that root is the check's decode of the commit block: a 36-byte view into the frame it
 * came in, so each of up to maxRepos (500,000) repos keeps its last frame's whole buffer alive
 * (the WebSocket message, or the socket read it was cut from) — where a worker's answer copies
 * the roots into one small buffer. Here a commit arrives in a 4 MiB buffer: once it is judged
 * and nothing else holds it, the buffer must be collectable.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { accountFrame } from './support/frames.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, commitFrameOf, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'r')}`, record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } });

test('in full mode on the main thread, the chain keeps a repo\'s MST root, not the buffer of the frame it came in', async (t) => {
  const alice = await SignedRepo.create('did:plc:aliceretainsframe00000000');
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey)));
  let delivered = 0;
  const { verifier } = verifierUnderTest(t, plcUrl, { deliver: () => delivered++ });
  verifier.handle(commitOf(await alice.commit(1, [post()])));
  await waitUntil(() => delivered === 1, 'alice\'s first commit (her key cached)');

  // Her next commit, in a large buffer as a socket read would hand it over.
  const ref = await (async () => {
    const frame = commitFrameOf(await alice.commit(2, [post()]));
    const big = new Uint8Array(4 << 20);
    big.set(frame);
    verifier.handle(parseMessage(decodeFrame(big.subarray(0, frame.length), 10_000_000)));
    return new WeakRef(big.buffer);
  })();
  await waitUntil(() => delivered === 2, 'alice\'s second commit');
  // Enough other messages that the Verifier's queue lets go of the judged ones.
  for (let seq = 3; seq < 3 + 2_100; seq++) verifier.handle(parseMessage(decodeFrame(accountFrame({ seq, did: 'did:plc:fillerfillerfillerfiller', active: true }), 10_000)));
  await waitUntil(() => delivered === 2 + 2_100, 'the other messages');
  await verifier.idle();
  for (let i = 0; i < 5 && ref.deref() !== undefined; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.ok(ref.deref() === undefined, 'the 4 MiB buffer alice\'s second commit came in is still reachable once the commit was judged');
});
