/**
 * Review (session 16): in `full` mode the Verifier keeps, per repo (up to maxRepos, 500,000), the
 * MST root of its last verified commit. A worker answers up to eight checks in one message, their
 * roots as views of one buffer handed over; kept as such a view, a repo's root kept that whole
 * buffer alive, however many of the other repos had moved on. Measured (a test-only script through
 * a real CheckPool, heap and external memory after GC): 471 bytes per repo when one root in eight
 * is still kept (236 MB at 500,000 repos), 143 when all are; copied, 242 either way (so on the
 * main thread, which copied); as a 36-character string, 56. The chain keeps a string: no buffer a
 * worker answered with stays reachable once its commits are judged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { CheckPool } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { accountFrame } from './support/frames.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const REPOS = 8;
const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'r')}`, record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } });

/** A real pool that remembers, weakly, each buffer the roots it answered with are views of. */
class WatchedPool extends CheckPool {
  readonly answered: WeakRef<ArrayBufferLike>[] = [];

  override check(...args: Parameters<CheckPool['check']>): ReturnType<CheckPool['check']> {
    const result = super.check(...args);
    void result.then(({ data }) => data && this.answered.push(new WeakRef(data.buffer)), () => {});
    return result;
  }
}

test('in full mode on a worker, the chain keeps each repo\'s MST root, not the buffer of the worker\'s answer it came in', async (t) => {
  const defer = cleanup(t);
  const repos = await Promise.all(Array.from({ length: REPOS }, (_, i) => SignedRepo.create(`did:plc:retainsreply${String(i).padStart(12, '0')}`)));
  const keys = new Map(repos.map((repo) => [repo.did, repo.signingKey]));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    res.end(didDocument(did, keys.get(did)!));
  });
  const pool = new WatchedPool(1, pino({ level: 'silent' }));
  defer(() => pool.close());
  await pool.ready();
  let delivered = 0;
  const { verifier } = verifierUnderTest(t, plcUrl, { checkPool: pool, deliver: () => delivered++ });

  let seq = 0;
  for (const repo of repos) verifier.handle(commitOf(await repo.commit(++seq, [post()])));
  await waitUntil(() => delivered === REPOS, 'each repo\'s first commit (its key cached)');

  // Their next commits arrive together: checked as one batch, answered first alone, then together.
  const next = await Promise.all(repos.map(async (repo, i) => commitOf(await repo.commit(REPOS + 1 + i, [post()]))));
  const answeredBefore = pool.answered.length;
  for (const message of next) verifier.handle(message);
  seq += REPOS;
  await waitUntil(() => delivered === 2 * REPOS, 'each repo\'s second commit');
  const answers = pool.answered.slice(answeredBefore);
  assert.equal(answers.length, REPOS, 'every second commit was checked on the worker');
  assert.ok(new Set(answers.map((ref) => ref.deref())).size < REPOS, 'some roots came back as views of one buffer');

  // Enough other messages that the Verifier's queue lets go of the judged ones.
  for (let i = 0; i < 2_100; i++) verifier.handle(parseMessage(decodeFrame(accountFrame({ seq: ++seq, did: 'did:plc:fillerfillerfillerfiller', active: true }), 10_000)));
  await waitUntil(() => delivered === 2 * REPOS + 2_100, 'the other messages');
  await verifier.idle();
  for (let i = 0; i < 5 && answers.some((ref) => ref.deref() !== undefined); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  const reachable = answers.filter((ref) => ref.deref() !== undefined);
  assert.equal(reachable.length, 0, `${reachable.length} buffers of the worker's answers are still reachable once their commits were judged (${reachable.map((ref) => ref.deref()!.byteLength).join(', ')} bytes)`);
});
