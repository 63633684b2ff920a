/**
 * With a cold identity cache (a first start with --verify, on the live network), a burst of commits
 * from repos whose DID documents are not cached yet is held, per repo, while the documents are
 * fetched. Reading from the upstream paused only on the count of repos waiting at the resolver
 * (its queue bound, 10,000), not on the bytes held for them: a burst of larger commits filled the
 * bytes held for all repos (64 MiB) first, and every commit past that failed as held_overflow, its
 * repo out of sync and resynced (a getRepo each) for what was only the gateway's own backlog.
 * Found by the verification review.
 *
 * Here scaled down (256 KiB held in all), with the real parts the gateway wires: a relay on a
 * loopback socket, the FirehoseClient paused and resumed by the Verifier's backpressure, and a PLC
 * directory answering each document after a short while. Reading pauses while more than half the
 * bound is held and resumes below a quarter of it, so nothing is dropped: every commit is delivered,
 * each repo's in the order the relay sent them, and the held bytes never reach the bound.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { IdentityResolver } from '../src/identity/index.ts';
import { createVerifyMetrics, Verifier } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { commitFrameOf, SignedRepo } from './support/signed-repo.ts';
import { startClient } from './support/upstream-harness.ts';
import { didDocument, identityCacheUnderTest } from './support/verifier-harness.ts';

const REPOS = 60;
const COMMITS_PER_REPO = 3;
const MAX_HELD_BYTES = 256 * 1024;
const POST = 'app.bsky.feed.post';

test('a burst of commits from repos with cold identity caches pauses reading on the bytes held: none is dropped or reordered', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const repos = await Promise.all(Array.from({ length: REPOS }, (_, i) => SignedRepo.create(`did:plc:heldbytespause${String(i).padStart(10, '0')}`)));
  const keys = new Map(repos.map((repo) => [repo.did, repo.signingKey]));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    setTimeout(() => res.end(didDocument(did, keys.get(did)!)), 20);
  });
  const cache = identityCacheUnderTest(defer, 'contrail-held-bytes-pause-');
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, maxConcurrent: 4 });

  // Each commit carries a ~4 KB post: the burst is about 800 KB, three times the bound.
  let seq = 0;
  const frames: Uint8Array[] = [];
  const sent = new Map<string, number[]>();
  for (let round = 0; round < COMMITS_PER_REPO; round++) {
    for (const repo of repos) {
      const record = { $type: POST, text: `${round} `.padEnd(4_000, 'x'), createdAt: '2026-12-01T00:00:00.000Z' };
      const body = await repo.commit(++seq, [{ action: 'create', collection: POST, rkey: `3l${String(round).padStart(11, 'a')}`, record }]);
      frames.push(commitFrameOf(body));
      sent.set(repo.did, [...(sent.get(repo.did) ?? []), body.seq]);
    }
  }

  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const registry = new Registry();
  const metrics = createVerifyMetrics(registry);
  // The most the gauge of held bytes ever read: the Verifier sets it at every change.
  let heldPeak = 0;
  const heldBytes = metrics.heldBytes;
  metrics.heldBytes = Object.assign(Object.create(heldBytes) as typeof heldBytes, {
    set: (value: number) => {
      heldPeak = Math.max(heldPeak, value);
      heldBytes.set(value);
    },
  });
  const delivered = new Map<string, number[]>();
  let deliveredCount = 0;
  const pauses: boolean[] = [];
  let upstream: ReturnType<typeof startClient> | undefined;
  const verifier = new Verifier({
    mode: 'full',
    identity,
    logger: pino({ level: 'silent' }),
    metrics,
    maxHeldBytes: MAX_HELD_BYTES,
    deliver: (message) => {
      if (message.type !== 'commit') return;
      delivered.set(message.repo, [...(delivered.get(message.repo) ?? []), message.seq]);
      deliveredCount++;
    },
    // As the gateway wires it: the socket stops being read while the Verifier asks.
    onBackpressure: (paused) => {
      pauses.push(paused);
      if (paused) upstream?.client.pause();
      else upstream?.client.resume();
    },
  });
  upstream = startClient(relay.url, { onMessage: (message) => verifier.handle(message) });
  defer(() => upstream.client.stop());
  await relay.waitForConnections(1);
  frames.forEach((bytes, i) => relay.push({ seq: i + 1, bytes }));

  const failures = async () => (await registry.metrics()).split('\n').filter((line) => line.startsWith('contrail_verify_failures_total{'));
  await waitUntil(async () => deliveredCount === frames.length || (await failures()).length > 0, 'every commit delivered, or one failed', 60_000);
  await waitUntil(async () => deliveredCount === frames.length || verifier.heldRepos().length === 0, 'every commit delivered, or none held any more', 60_000);
  await verifier.idle();

  assert.deepEqual(await failures(), [], 'no commit failed (held_overflow: dropped for the bytes held)');
  assert.equal(deliveredCount, frames.length);
  for (const repo of repos) assert.deepEqual(delivered.get(repo.did), sent.get(repo.did), `${repo.did}'s commits, in the relay's order`);
  assert.ok(heldPeak < MAX_HELD_BYTES, `held bytes peaked at ${heldPeak}, the bound is ${MAX_HELD_BYTES}`);
  assert.ok(pauses.includes(true), 'reading paused');
  assert.equal(pauses.at(-1), false, 'and resumed');
  assert.match(await registry.metrics(), /contrail_verify_read_pauses_total\{reason="held_bytes"\} [1-9]/);
});
