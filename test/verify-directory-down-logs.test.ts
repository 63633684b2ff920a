/**
 * With the PLC directory down, every repo that commits under --verify fails (unknown_key), goes out
 * of sync and fails its resync: on the live network thousands of repos a minute. The counters
 * must count each one, and the log must not: a line per kind of trouble per interval, carrying how
 * many it stood for, not a line or two per repo.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { IdentityResolver } from '../src/identity/index.ts';
import { createVerifyMetrics, Verifier } from '../src/verify/index.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';
import { cleanup } from './support/cleanup.ts';
import { seriesValue } from './support/exposition.ts';
import { commitOf, gatewayResync, identityCacheUnderTest } from './support/verifier-harness.ts';

const REPOS = 40;
const POST = 'app.bsky.feed.post';

test('a PLC directory that is down logs a bounded number of lines however many repos fail, and counts every one', async (t) => {
  const defer = cleanup(t);
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => res.writeHead(503).end());
  const cache = identityCacheUnderTest(defer, 'contrail-verify-flood-');
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, failureTtlMs: 0 });
  const registry = new Registry();
  const logs: LogLine[] = [];
  const verifier = new Verifier({
    mode: 'signatures',
    identity,
    logger: capturingLogger(logs),
    metrics: createVerifyMetrics(registry),
    deliver: () => {},
    resync: gatewayResync(identity),
  });
  for (let i = 0; i < REPOS; i++) {
    const repo = await SignedRepo.create(`did:plc:directorydown${String(i).padStart(11, '0')}`);
    const body = await repo.commit(i + 1, [{ action: 'create', collection: POST, rkey: `3l${String(i).padStart(11, 'a')}`, record: { $type: POST, text: `post ${i}`, createdAt: '2026-12-01T00:00:00.000Z' } }]);
    verifier.handle(commitOf(body));
  }
  const metric = async (series: string) => seriesValue(await registry.metrics(), series);
  await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="failed"}')) === REPOS, `${REPOS} failed resyncs`, 30_000);
  await verifier.idle();
  assert.equal(await metric('contrail_verify_failures_total{reason="unknown_key"}'), REPOS);
  assert.equal(await metric('contrail_verify_out_of_sync_repos'), REPOS);
  const warnings = logs.filter((line) => line.level >= 40);
  assert.ok(warnings.length <= 6, `${warnings.length} warning lines for ${REPOS} repos: ${[...new Set(warnings.map((line) => line.msg))].join(' | ')}`);
  const told = (msg: RegExp) => warnings.filter((line) => msg.test(line.msg));
  assert.equal(told(/out of sync/).length, 1, 'the first repo out of sync is told');
  assert.equal(told(/could not resync/).length, 1, 'the first failed resync is told');
});
