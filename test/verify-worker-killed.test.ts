/**
 * A verification worker that dies with checks in flight loses none of them: they run on the main
 * thread, every commit is delivered once, each repo in its order, the chain goes on, and a new
 * worker takes the next checks. The worker is terminated as the first commit of a backlog it is
 * checking is delivered: the worker answers a batch's first check alone, then the rest a few at
 * a time, so the rest of the backlog's checks are asked for and not answered at that moment.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { UpstreamMessage } from '../src/upstream/index.ts';
import { CheckPool } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type Write } from './support/signed-repo.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const REPOS = 6;
const COMMITS = 8;
const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'k')}`, record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } });

test('a verification worker killed with checks in flight: every commit is still judged and delivered once, in order; a new worker takes over', async (t) => {
  const defer = cleanup(t);
  const repos = await Promise.all(Array.from({ length: REPOS }, (_, i) => SignedRepo.create(`did:plc:workerkilled${String(i).padStart(12, '0')}`)));
  const keys = new Map(repos.map((repo) => [repo.did, repo.signingKey]));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    res.end(didDocument(did, keys.get(did)!));
  });
  const logs: LogLine[] = [];
  const pool = new CheckPool(1, capturingLogger(logs));
  defer(() => pool.close());
  await pool.ready();
  const delivered: UpstreamMessage[] = [];
  let killAt: number | undefined;
  let inFlightAtKill: number | undefined;
  let killed: Promise<number> | undefined;
  const deliver = (message: UpstreamMessage) => {
    delivered.push(message);
    if (delivered.length !== killAt) return;
    // Synchronously, before any other answer of the worker's can come in.
    const [worker] = pool.threads();
    assert.ok(worker, 'the worker runs');
    inFlightAtKill = pool.pending;
    killed = worker.terminate();
  };
  const { verifier, registry } = verifierUnderTest(t, plcUrl, { checkPool: pool, logger: pino({ level: 'silent' }), deliver });

  // Each repo's first commit caches its key, so the backlog below is checked ahead on the worker.
  let seq = 0;
  for (const repo of repos) verifier.handle(commitOf(await repo.commit(++seq, [post()])));
  await waitUntil(() => delivered.length === REPOS, 'each repo\'s first commit');

  const backlog: UpstreamMessage[] = [];
  for (let round = 1; round < COMMITS; round++) for (const repo of repos) backlog.push(commitOf(await repo.commit(++seq, [post()])));
  const [worker] = pool.threads();
  killAt = REPOS + 1;
  for (const message of backlog) verifier.handle(message);
  await waitUntil(() => killed !== undefined, 'the first commit of the backlog');
  await killed;
  assert.ok(inFlightAtKill! > 0, `checks in flight when the worker was killed: ${inFlightAtKill}`);
  await waitUntil(() => delivered.length === REPOS * COMMITS, `all ${REPOS * COMMITS} commits`, 60_000);
  await verifier.idle();

  const seqs = delivered.map((message) => (message.type === 'commit' ? message.seq : -1));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'delivered in upstream order');
  assert.equal(new Set(seqs).size, REPOS * COMMITS, 'each once');
  assert.doesNotMatch(await registry.metrics(), /contrail_verify_failures_total\{/, 'no failure');
  assert.ok(logs.some((line) => line.level === 50 && /verification worker stopped/.test(line.msg)), 'the death is logged');

  // The next checks start a new worker.
  verifier.handle(commitOf(await repos[0]!.commit(++seq, [post()])));
  await waitUntil(() => delivered.length === REPOS * COMMITS + 1, 'a commit after the death');
  assert.equal(pool.threads().length, 1, 'a worker runs again');
  assert.notEqual(pool.threads()[0], worker);
});
