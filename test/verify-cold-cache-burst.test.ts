/**
 * Review (session 16): with a cold identity cache (a first start with --verify, on the live
 * network), new repos come faster than the directory answers. The resolver runs 16 fetches at once
 * and lets 10,000 wait; past that it refuses at once (`overloaded`), and the Verifier failed the
 * repo's held commits as unknown_key, marked it out of sync and queued a resync — a getRepo of the
 * whole repo — for what was only the gateway's own backlog. Scaled down here (2 at once, 20
 * waiting, a directory answering in 30 ms, 200 new repos at once): 178 of the 200 valid commits
 * were withheld and 178 resyncs started. A repo refused for that keeps its messages held and asks
 * again once the resolver has room, and reading from the upstream pauses meanwhile.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { IdentityResolver } from '../src/identity/index.ts';
import { createVerifyMetrics, Verifier } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf, didDocument, identityCacheUnderTest } from './support/verifier-harness.ts';

const REPOS = 200;
const POST = 'app.bsky.feed.post';

test('a burst of new repos larger than the resolver lets wait: none is failed or resynced, reading pauses, and every commit is delivered', async (t) => {
  const defer = cleanup(t);
  const repos = await Promise.all(Array.from({ length: REPOS }, (_, i) => SignedRepo.create(`did:plc:coldcacheburst${String(i).padStart(11, '0')}`)));
  const keys = new Map(repos.map((repo) => [repo.did, repo.signingKey]));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    setTimeout(() => res.end(didDocument(did, keys.get(did)!)), 30);
  });
  const cache = identityCacheUnderTest(defer, 'contrail-cold-cache-');
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, maxConcurrent: 2, maxQueued: 20 });
  const registry = new Registry();
  const delivered: number[] = [];
  const pauses: boolean[] = [];
  let resyncs = 0;
  const verifier = new Verifier({
    mode: 'full',
    identity,
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message) => message.type === 'commit' && delivered.push(message.seq),
    resync: async () => {
      resyncs++;
      throw new Error('no PDS in this test');
    },
    onBackpressure: (paused) => pauses.push(paused),
  });

  let seq = 0;
  const commits = [];
  for (const repo of repos) commits.push(commitOf(await repo.commit(++seq, [{ action: 'create', collection: POST, rkey: '3laaaaaaaaaaa', record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } }])));
  for (const commit of commits) verifier.handle(commit);
  await waitUntil(() => delivered.length + resyncs === REPOS, 'every repo delivered or resynced', 60_000);
  await verifier.idle();

  assert.equal(resyncs, 0, 'repos were resynced for the resolver\'s own backlog');
  assert.equal(delivered.length, REPOS);
  assert.doesNotMatch(await registry.metrics(), /contrail_verify_failures_total\{/);
  assert.equal(pauses[0], true, 'reading paused while repos waited for the resolver');
  assert.equal(pauses.at(-1), false, 'and resumed');
});
