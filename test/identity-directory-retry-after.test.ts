/**
 * A DID directory that rate-limits answers 429 (or 503) with Retry-After: how long to stay away.
 * The resolver took it as any passing failure: every other DID went on asking the directory
 * meanwhile, and a repo's first lookup under --verify was asked again 1, 2 and 4 s later whatever
 * the wait, so with a cold cache new repos failed as unknown_key and went out of sync while the
 * directory asked for patience. Now each directory (the PLC directory; each did:web host on its
 * own) has a time before which it is not asked: lookups that may wait, wait for it; the others
 * fail at once as `unreachable`, saying so, without a fetch. The wait is logged once and counted.
 * The refused DID's own failure is remembered until then too, not for the whole failure memory
 * (30 s), however short the wait (at least 1 s).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { createIdentityMetrics, IdentityError, IdentityResolver, type IdentityResolverOptions } from '../src/identity/index.ts';
import { createVerifyMetrics, Verifier } from '../src/verify/index.ts';
import type { UpstreamMessage } from '../src/upstream/index.ts';
import { cleanup } from './support/cleanup.ts';
import { seriesValue } from './support/exposition.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';
import { commitOf, didDocument, identityCacheUnderTest } from './support/verifier-harness.ts';

const KEY = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme';
const plcDid = (n: number) => `did:plc:retryafter${String(n).padStart(14, '0')}`;

function resolverFor(t: TestContext, plcUrl: string, overrides: Partial<IdentityResolverOptions> = {}) {
  const defer = cleanup(t);
  const cache = identityCacheUnderTest(defer, 'contrail-identity-retry-after-');
  const registry = new Registry();
  const logs: LogLine[] = [];
  // Private endpoints allowed: the did:web hosts are on 127.0.0.1.
  const resolver = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, metrics: createIdentityMetrics(registry), logger: capturingLogger(logs), ...overrides });
  const metric = async (series: string) => seriesValue(await registry.metrics(), series);
  return { resolver, logs, metric };
}

const failureOf = (lookup: Promise<unknown>) => lookup.then(() => assert.fail('resolved'), (err: IdentityError) => err);

/**
 * A directory (the PLC directory, or a did:web host) that rate-limits as a real one does: once `limitNext` is set,
 * the next request starts a wait of `seconds`, and every request before its end is answered
 * `status` with Retry-After (delay-seconds, or the end as an HTTP date).
 */
async function limitingDirectory(t: TestContext, { status = 429, seconds = 2, asDate = false, keyOf }: { status?: number; seconds?: number; asDate?: boolean; keyOf?: (did: string) => string } = {}) {
  const state = { limitNext: false, requests: 0, refused: 0, until: 0 };
  const { url } = await localHttpServer(t, (req, res) => {
    state.requests++;
    const now = Date.now();
    if (state.limitNext) {
      state.limitNext = false;
      // A date has whole seconds: the wait ends on the second after `seconds` from now.
      state.until = asDate ? Math.ceil((now + seconds * 1000) / 1000) * 1000 : now + seconds * 1000;
    }
    if (now < state.until) {
      state.refused++;
      const header = asDate ? new Date(state.until).toUTCString() : String(Math.ceil((state.until - now) / 1000));
      res.writeHead(status, { 'retry-after': header }).end();
      return;
    }
    // A did:web host serves its one DID's document; the PLC directory the DID asked for.
    const did = req.url === '/.well-known/did.json' ? `did:web:${encodeURIComponent(req.headers.host!)}` : req.url!.slice(1);
    res.setHeader('content-type', 'application/json');
    res.end(didDocument(did, keyOf?.(did) ?? KEY));
  });
  return { url, state };
}

test('after a 429 with Retry-After, lookups of other DIDs fail at once as unreachable, naming the wait, and the directory is not asked; the wait is logged and counted once', async (t) => {
  const plc = await limitingDirectory(t, { seconds: 30 });
  const { resolver, logs, metric } = resolverFor(t, plc.url);
  plc.state.limitNext = true;
  const first = await failureOf(resolver.resolve(plcDid(1)));
  assert.equal(first.reason, 'unreachable');
  assert.match(first.message, /HTTP 429/);

  for (const lookup of [resolver.resolve(plcDid(2)), resolver.resolve(plcDid(3)), resolver.refresh(plcDid(4)), resolver.refresh(plcDid(1))]) {
    const failure = await failureOf(lookup);
    assert.equal(failure.reason, 'unreachable');
    assert.match(failure.message, /asked to wait until .*Retry-After.*not asked before then/, failure.message);
  }
  assert.equal(plc.state.requests, 1, 'the directory is asked nothing while it asked to wait');
  const waits = logs.filter((line) => /asked to wait/.test(line.msg));
  assert.equal(waits.length, 1, 'the wait is logged once');
  assert.equal(waits[0]!.level, 40);
  assert.equal(await metric('contrail_identity_directory_waits_total{directory="plc"}'), 1);
});

for (const { status, asDate } of [{ status: 429, asDate: false }, { status: 503, asDate: true }]) {
  test(`resolvePatiently asks again only once the directory's ${status} Retry-After (${asDate ? 'an HTTP date' : 'seconds'}) has passed`, async (t) => {
    const plc = await limitingDirectory(t, { status, seconds: 2, asDate });
    // Retries far shorter than the wait: each would meet the directory's refusal.
    const { resolver } = resolverFor(t, plc.url, { patientRetriesMs: [20, 20, 20] });
    plc.state.limitNext = true;
    const identity = await resolver.resolvePatiently(plcDid(5));
    assert.equal(identity.did, plcDid(5));
    assert.equal(plc.state.refused, 1, 'the directory was not asked again before its time');
    assert.equal(plc.state.requests, 2);
  });
}

test('a lookup that may wait (resolve with wait) waits for the directory, then fetches', async (t) => {
  const plc = await limitingDirectory(t, { seconds: 2 });
  const { resolver } = resolverFor(t, plc.url);
  plc.state.limitNext = true;
  await failureOf(resolver.resolve(plcDid(6)));
  const identity = await resolver.resolve(plcDid(7), true);
  assert.equal(identity.did, plcDid(7));
  assert.equal(plc.state.refused, 1, 'no request before the directory\'s time');
  assert.equal(plc.state.requests, 2);
});

test('each did:web host waits on its own, apart from the PLC directory', async (t) => {
  const plc = await limitingDirectory(t, { seconds: 30 });
  const limited = await limitingDirectory(t, { seconds: 30 });
  const other = await limitingDirectory(t, { seconds: 30 });
  const webDid = (url: string) => `did:web:localhost%3A${new URL(url).port}`;
  const { resolver, metric } = resolverFor(t, plc.url);

  limited.state.limitNext = true;
  assert.match((await failureOf(resolver.resolve(webDid(limited.url)))).message, /HTTP 429/);
  const again = await failureOf(resolver.refresh(webDid(limited.url)));
  assert.match(again.message, /asked to wait/, 'the host that asked to wait is not asked again');
  assert.equal(limited.state.requests, 1);
  assert.equal((await resolver.resolve(webDid(other.url))).did, webDid(other.url), 'another did:web host is asked');
  assert.equal((await resolver.resolve(plcDid(8))).did, plcDid(8), 'the PLC directory is asked');
  assert.equal(await metric('contrail_identity_directory_waits_total{directory="did_web"}'), 1);

  plc.state.limitNext = true;
  await failureOf(resolver.resolve(plcDid(9)));
  assert.equal((await resolver.refresh(webDid(other.url))).did, webDid(other.url), 'did:web hosts are asked while the PLC directory waits');
  assert.equal(await metric('contrail_identity_directory_waits_total{directory="plc"}'), 1);
});

test('a Retry-After is honoured for at most 60 s; an absent or unreadable one changes nothing', async (t) => {
  let header: string | undefined;
  let requests = 0;
  const { url } = await localHttpServer(t, (_req, res) => {
    requests++;
    res.writeHead(429, header === undefined ? {} : { 'retry-after': header }).end();
  });
  const { resolver, logs } = resolverFor(t, url);
  for (const [n, unread] of [undefined, 'soon'].entries()) {
    header = unread;
    await failureOf(resolver.resolve(plcDid(10 + 2 * n)));
    assert.match((await failureOf(resolver.resolve(plcDid(11 + 2 * n)))).message, /HTTP 429/, `Retry-After: ${unread}: the next DID is asked`);
  }
  assert.equal(requests, 4);

  header = '86400';
  assert.match((await failureOf(resolver.resolve(plcDid(20)))).message, /it asks to wait 86400 s, contrail waits 60 s/);
  const before = Date.now();
  const refused = await failureOf(resolver.resolve(plcDid(21)));
  const until = Date.parse(/asked to wait until (\S+)/.exec(refused.message)![1]!);
  assert.ok(until <= before + 60_000, `the wait ends within 60 s: ${refused.message}`);
  assert.equal(logs.find((line) => /asked to wait/.test(line.msg))?.waitMs, 60_000);
  assert.equal(requests, 5);
});

test('under --verify, new repos met by a directory that asks to wait are emitted once it answers, not sent out of sync', async (t) => {
  const defer = cleanup(t);
  const repos = await Promise.all(Array.from({ length: 6 }, (_, i) => SignedRepo.create(plcDid(30 + i))));
  const keys = new Map(repos.map((repo) => [repo.did, repo.signingKey]));
  const plc = await limitingDirectory(t, { seconds: 2, keyOf: (did: string) => keys.get(did)! });
  const cache = identityCacheUnderTest(defer, 'contrail-verify-retry-after-');
  // Retries far shorter than the wait: each would meet the directory's refusal.
  const identity = new IdentityResolver({ plcUrl: plc.url, cache, allowPrivateEndpoints: true, failureTtlMs: 30_000, patientRetriesMs: [20, 20, 20] });
  const registry = new Registry();
  const delivered: UpstreamMessage[] = [];
  const verifier = new Verifier({ mode: 'signatures', identity, logger: capturingLogger([]), metrics: createVerifyMetrics(registry), deliver: (message) => delivered.push(message) });

  plc.state.limitNext = true;
  for (const [i, repo] of repos.entries()) {
    const POST = 'app.bsky.feed.post';
    verifier.handle(commitOf(await repo.commit(i + 1, [{ action: 'create', collection: POST, rkey: `3laaaaaaaaa${String.fromCharCode(97 + i)}2`, record: { $type: POST, text: `post ${i}`, createdAt: '2026-12-01T00:00:00.000Z' } }])));
  }
  await waitUntil(async () => delivered.length === repos.length || /contrail_verify_failures_total\{reason="unknown_key"\} [1-9]/.test(await registry.metrics()), 'every commit emitted, or one failed', 30_000);
  await verifier.idle();
  assert.equal(delivered.length, repos.length, 'every new repo\'s commit is emitted');
  for (const repo of repos) assert.equal(verifier.outOfSync(repo.did), undefined, `${repo.did} is in sync`);
  assert.ok(plc.state.refused <= repos.length, `no repo's lookup is asked again before the directory's time (${plc.state.refused} refused)`);
});

test('a DID whose lookup met a 429 is looked up again once the directory\'s Retry-After has passed, not only when its failure is forgotten (failureTtlMs)', async (t) => {
  const plc = await limitingDirectory(t, { seconds: 1 });
  // A failure memory far longer than the test: only the directory's wait may end it.
  const { resolver } = resolverFor(t, plc.url, { failureTtlMs: 600_000 });
  plc.state.limitNext = true;
  assert.match((await failureOf(resolver.resolve(plcDid(40)))).message, /HTTP 429.*asks to wait 1 s/);
  await waitUntil(() => resolver.resolve(plcDid(40)).then(() => true, () => false), 'the DID to resolve once the directory\'s wait is over', 30_000);
  assert.equal(plc.state.refused, 1, 'the directory was not asked again before its time');
  assert.equal(plc.state.requests, 2);
});

test('a 429 with Retry-After: 0 still keeps its DID from being asked again at once, and only briefly', async (t) => {
  let requests = 0;
  const { url } = await localHttpServer(t, (req, res) => {
    if (++requests === 1) res.writeHead(429, { 'retry-after': '0' }).end();
    else res.end(didDocument(req.url!.slice(1), KEY));
  });
  const { resolver } = resolverFor(t, url, { failureTtlMs: 600_000 });
  assert.match((await failureOf(resolver.resolve(plcDid(41)))).message, /HTTP 429/);
  assert.match((await failureOf(resolver.resolve(plcDid(41)))).message, /HTTP 429/, 'the failure answers the next lookup');
  assert.equal(requests, 1, 'the directory is not asked again at once');
  await waitUntil(() => resolver.resolve(plcDid(41)).then(() => true, () => false), 'the DID to resolve once its failure is forgotten', 30_000);
  assert.equal(requests, 2);
});
