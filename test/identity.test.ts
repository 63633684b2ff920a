/**
 * The identity stage: DID documents read as atproto says, resolution from a PLC-style directory
 * and from did:web hosts served on 127.0.0.1, the LMDB cache and its bound, concurrency and
 * queue bounds, timeouts, size limits, and the endpoint guard that keeps DID documents from
 * pointing fetches at private addresses.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import {
  IdentityCache,
  IdentityError,
  IdentityResolver,
  checkEndpointUrl,
  createIdentityMetrics,
  getGuarded,
  identityFromDocument,
  isNonPublicAddress,
  RefusedEndpointError,
} from '../src/identity/index.ts';
import { guardedLookup } from '../src/identity/endpoint-guard.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { Gate } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { identityCacheUnderTest } from './support/verifier-harness.ts';

const signatureFixtures = JSON.parse(readFileSync(new URL('./fixtures/atproto-interop-tests/crypto/signature-fixtures.json', import.meta.url), 'utf8')) as {
  didDocSuite: string;
  publicKeyDid: string;
  publicKeyMultibase: string;
}[];

function plcDocument(did: string, key: string, pds: string, handle = 'alice.test') {
  return {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
    id: did,
    alsoKnownAs: [`at://${handle}`],
    verificationMethod: [{ id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: key.slice('did:key:'.length) }],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pds }],
  };
}

/** An HTTP server on 127.0.0.1 answering with `handler`; counts requests and the most at once. */
async function directory(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const stats = { requests: 0, open: 0, mostOpen: 0 };
  const server = createServer((req, res) => {
    stats.requests++;
    stats.open++;
    stats.mostOpen = Math.max(stats.mostOpen, stats.open);
    res.once('close', () => stats.open--);
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, port: (server.address() as AddressInfo).port, stats };
}

function resolverFor(t: TestContext, plcUrl: string, overrides: Partial<ConstructorParameters<typeof IdentityResolver>[0]> = {}) {
  const cache = identityCacheUnderTest(cleanup(t), 'contrail-identity-');
  const registry = new Registry();
  const resolver = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: false, metrics: createIdentityMetrics(registry), ...overrides });
  return { resolver, cache, registry };
}

const KEY = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme';
const ALICE = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';

describe('DID documents', () => {
  test('reads the #atproto key, the #atproto_pds endpoint and the handle', async () => {
    const identity = identityFromDocument(ALICE, plcDocument(ALICE, KEY, 'https://pds.example.com/'), 1);
    assert.deepEqual(identity, { did: ALICE, signingKey: KEY, pdsEndpoint: 'https://pds.example.com', handle: 'alice.test', fetchedAt: 1 });
  });

  test('legacy key types of the interop fixtures become the same did:key', async () => {
    for (const fixture of signatureFixtures.filter((f) => f.didDocSuite !== 'Multikey')) {
      const doc = {
        id: ALICE,
        verificationMethod: [{ id: '#atproto', type: fixture.didDocSuite, controller: ALICE, publicKeyMultibase: fixture.publicKeyMultibase }],
      };
      const identity = identityFromDocument(ALICE, doc, 1);
      assert.equal(identity.signingKey, fixture.publicKeyDid, fixture.didDocSuite);
    }
  });

  test('a document for another DID, or with a broken key or endpoint, is refused', async () => {
    assert.throws(() => identityFromDocument(ALICE, plcDocument('did:plc:someoneelse', KEY, 'https://pds.example.com'), 1), /not did:plc:ewvi/);
    assert.throws(() => identityFromDocument(ALICE, plcDocument(ALICE, 'did:key:znotbase58!', 'https://pds.example.com'), 1), /#atproto key is unusable/);
    assert.throws(() => identityFromDocument(ALICE, plcDocument(ALICE, KEY, 'ftp://pds.example.com'), 1), /not http/);
  });

  test('a document without a key or a PDS resolves with those undefined', async () => {
    const identity = identityFromDocument(ALICE, { id: ALICE }, 1);
    assert.equal(identity.signingKey, undefined);
    assert.equal(identity.pdsEndpoint, undefined);
  });
});

describe('IdentityResolver', () => {
  test('fetches from the PLC directory once, then answers from the cache', async (t) => {
    const plc = await directory(t, (req, res) => {
      assert.equal(req.url, `/${ALICE}`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(plcDocument(ALICE, KEY, 'https://pds.example.com')));
    });
    const { resolver, registry } = resolverFor(t, plc.url);
    assert.equal(resolver.cached(ALICE), undefined);
    const [a, b] = await Promise.all([resolver.resolve(ALICE), resolver.resolve(ALICE)]);
    assert.equal(plc.stats.requests, 1, 'two callers at once share one fetch');
    assert.equal(a.signingKey, KEY);
    assert.deepEqual(b, a);
    assert.deepEqual(resolver.cached(ALICE), a);
    await resolver.resolve(ALICE);
    assert.equal(plc.stats.requests, 1);
    await resolver.refresh(ALICE);
    assert.equal(plc.stats.requests, 2, 'refresh always fetches');
    assert.match(await registry.metrics(), /contrail_identity_resolutions_total\{result="ok"\} 2/);
  });

  test('unknown DIDs, error statuses, junk and oversized documents fail with a reason, remembered briefly', async (t) => {
    const plc = await directory(t, (req, res) => {
      if (req.url!.endsWith('gone')) res.writeHead(404).end();
      else if (req.url!.endsWith('broken')) res.writeHead(502).end();
      else if (req.url!.endsWith('junk')) res.end('<html>');
      else res.end(JSON.stringify({ id: req.url!.slice(1), padding: 'x'.repeat(100_000) }));
    });
    const { resolver } = resolverFor(t, plc.url);
    const reason = (did: string) => resolver.resolve(did).then(() => 'resolved', (err: IdentityError) => err.reason);
    assert.equal(await reason('did:plc:gone'), 'not_found');
    assert.equal(await reason('did:plc:broken'), 'unreachable');
    assert.equal(await reason('did:plc:junk'), 'bad_document');
    assert.equal(await reason('did:plc:huge'), 'bad_document');
    assert.equal(await reason('did:key:zQ3sh'), 'unsupported_did');
    const requests = plc.stats.requests;
    assert.equal(await reason('did:plc:gone'), 'not_found');
    assert.equal(plc.stats.requests, requests, 'a recent failure is not fetched again');
    resolver.forgetFailure('did:plc:gone');
    assert.equal(await reason('did:plc:gone'), 'not_found');
    assert.equal(plc.stats.requests, requests + 1);
  });

  // A DID deleted at its directory (a tombstoned did:plc: the PLC answers 410) or at its host must
  // not go on verifying with the key cached before: its commits would keep passing --verify.
  test('a document the directory says is gone (404, 410) leaves the cache; a directory that fails otherwise does not', async (t) => {
    let answer: 'document' | 410 | 404 | 503 = 'document';
    const plc = await directory(t, (req, res) => {
      if (answer === 'document') res.end(JSON.stringify(plcDocument(req.url!.slice(1), KEY, 'https://pds.example.com')));
      else res.writeHead(answer).end();
    });
    const { resolver, registry } = resolverFor(t, plc.url);
    const refreshed = (did: string) => resolver.refresh(did).then(() => 'resolved', (err: IdentityError) => err.reason);
    for (const gone of [410, 404] as const) {
      const did = `did:plc:gone${gone}`;
      answer = 'document';
      assert.equal((await resolver.resolve(did)).signingKey, KEY);
      answer = 503;
      assert.equal(await refreshed(did), 'unreachable');
      assert.equal(resolver.cached(did)?.signingKey, KEY, 'a directory that is down says nothing of the document: it stays');
      answer = gone;
      assert.equal(await refreshed(did), 'not_found');
      assert.equal(resolver.cached(did), undefined, `after ${gone}, the old key is not used`);
      await assert.rejects(resolver.resolve(did), (err: IdentityError) => err.reason === 'not_found');
    }
    assert.match(await registry.metrics(), /contrail_identity_cache_entries 0/);
  });

  // On a fast machine a fetch can begin, fail and be refreshed within one millisecond (last
  // session's CI did it): a fetch begun in the millisecond a refresh is asked may have begun
  // before it, so neither it nor its remembered failure may answer that refresh. The clock is
  // held still to make every step fall in one millisecond; the sockets are real.
  test('a refresh asked in the millisecond a fetch began fetches anew: a tie is not "begun since"', async (t) => {
    let answer: 'document' | 503 | 410 = 'document';
    const plc = await directory(t, (req, res) => {
      if (answer === 'document') res.end(JSON.stringify(plcDocument(req.url!.slice(1), KEY, 'https://pds.example.com')));
      else res.writeHead(answer).end();
    });
    const { resolver } = resolverFor(t, plc.url);
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const refreshed = (did: string) => resolver.refresh(did).then(() => 'resolved', (err: IdentityError) => err.reason);
    assert.equal((await resolver.resolve(ALICE)).signingKey, KEY);
    answer = 503;
    assert.equal(await refreshed(ALICE), 'unreachable');
    answer = 410;
    assert.equal(await refreshed(ALICE), 'not_found', 'the 503 is not the answer to a refresh asked after it');
    assert.equal(resolver.cached(ALICE), undefined);
    assert.equal(plc.stats.requests, 3);
  });

  // Two fetches of one DID overlap when a refresh (an #identity event, a failed signature) asks
  // for a document newer than the running fetch's. If the newer one finds the document gone, the
  // older one, answering later, must not put the old key back in the cache.
  test('a document a newer fetch found gone (410) is not cached by an older fetch that answers after it', async (t) => {
    const gate = new Gate();
    const answer = gate.stall();
    const seen: number[] = [];
    const plc = await directory(t, (req, res) => {
      seen.push(Date.now());
      if (seen.length === 1) void gate.passed.then(() => res.end(JSON.stringify(plcDocument(ALICE, KEY, 'https://pds.example.com'))));
      else res.writeHead(410).end();
    });
    const { resolver } = resolverFor(t, plc.url);
    const older = resolver.resolve(ALICE);
    await waitUntil(() => seen.length === 1 && Date.now() > seen[0]!, 'the first fetch begun, and a millisecond past it');
    await assert.rejects(resolver.refresh(ALICE), (err: IdentityError) => err.reason === 'not_found', 'the newer fetch finds the DID gone');
    answer();
    assert.equal((await older).signingKey, KEY, 'the older fetch answers its own caller');
    assert.equal(resolver.cached(ALICE), undefined, 'but the document it brought, older than the tombstone, is not cached');
    await assert.rejects(resolver.resolve(ALICE), (err: IdentityError) => err.reason === 'not_found', 'a lookup gets the newer answer');
    assert.equal(seen.length, 2);
  });

  // A fetch queued for a DID (behind a busy slot, or behind the DID's newer fetch) was made for a
  // refresh asked for after the running fetches began (a rotated key): their outcome is older than
  // it needs, so their failure does not answer it. It fetches once, for everyone who joined it.
  for (const { queue, maxConcurrent, running } of [
    { queue: 'for a fetch slot', maxConcurrent: 1, running: 1 },
    { queue: "for the DID's newer fetch to end", maxConcurrent: 4, running: 2 },
  ]) {
    test(`a refresh queued behind the DID's fetches is not answered by their failure: one fetch of its own answers every caller that joined it (${queue})`, async (t) => {
      const gate = new Gate();
      const answer = gate.stall();
      const seen: number[] = [];
      const plc = await directory(t, (_req, res) => {
        seen.push(Date.now());
        // The fetches running when the refreshes asked fail; the one made for them finds the new document.
        if (seen.length <= running) void gate.passed.then(() => res.writeHead(502).end());
        else res.end(JSON.stringify(plcDocument(ALICE, KEY, 'https://pds.example.com', 'rotated.test')));
      });
      const { resolver } = resolverFor(t, plc.url, { maxConcurrent });
      const outcome = (lookup: Promise<{ handle?: string }>) => lookup.then((identity) => identity.handle, (err: IdentityError) => err.reason);
      const answeredByRunning = [outcome(resolver.resolve(ALICE))];
      // Each refresh asks for a document fetched after the running fetches began (a rotated key):
      // the clock must have moved past the newest's start for it to be a fetch of its own.
      for (let started = 1; started < running; started++) {
        await waitUntil(() => seen.length === started && Date.now() > seen.at(-1)!, `fetch ${started} begun, and a millisecond past it`);
        answeredByRunning.push(outcome(resolver.refresh(ALICE)));
      }
      await waitUntil(() => seen.length === running && Date.now() > seen.at(-1)!, `${running} fetches begun, and a millisecond past them`);
      const queued: Array<Promise<string | undefined>> = [];
      for (let i = 0; i < 5; i++) queued.push(outcome(resolver.refresh(ALICE)), outcome(resolver.resolve(ALICE)));
      answer();
      assert.deepEqual(new Set(await Promise.all(answeredByRunning)), new Set(['unreachable']), 'the running fetches failed');
      assert.deepEqual(new Set(await Promise.all(queued)), new Set(['rotated.test']), 'the refreshes asked for since, and the lookups that joined them, get the document fetched after they asked');
      assert.equal(plc.stats.requests, running + 1, 'one fetch for every caller queued behind the running ones');
    });
  }

  test('after a DID fetch failed, lookups get that failure, but a refresh asked for since fetches again: one fetch of the DID at a time while it fails', async (t) => {
    const gate = new Gate();
    const answer = gate.stall();
    const seen: number[] = [];
    const plc = await directory(t, (req, res) => {
      if (req.url !== `/${ALICE}`) return void res.writeHead(404).end();
      seen.push(Date.now());
      if (seen.length === 1) res.writeHead(502).end();
      else if (seen.length === 2) void gate.passed.then(() => res.writeHead(502).end()); // still failing, slowly
      else res.end(JSON.stringify(plcDocument(ALICE, KEY, 'https://pds.example.com', 'rotated.test')));
    });
    const { resolver } = resolverFor(t, plc.url);
    const outcome = (lookup: Promise<{ handle?: string }>) => lookup.then((identity) => identity.handle, (err: IdentityError) => err.reason);
    assert.equal(await outcome(resolver.resolve(ALICE)), 'unreachable');
    assert.equal(await outcome(resolver.resolve(ALICE)), 'unreachable');
    assert.equal(seen.length, 1, "a lookup within the failure's window is answered by it");

    await waitUntil(() => Date.now() > seen[0]!, "a millisecond past the failed fetch's start");
    let settled = false;
    const rotation = outcome(resolver.refresh(ALICE)).finally(() => (settled = true));
    await waitUntil(() => settled || seen.length === 2, 'the refresh to fetch, or to be answered');
    assert.equal(seen.length, 2, 'a refresh asked for after the failed fetch began (a rotation) fetches again');

    await waitUntil(() => Date.now() > seen[1]!, "a millisecond past the second fetch's start");
    const next = outcome(resolver.refresh(ALICE));
    // A lookup of another DID, asked for after it, reaches the directory: a fetch the refresh began at once would have too.
    const other = outcome(resolver.resolve('did:plc:someoneelse'));
    await waitUntil(() => plc.stats.requests === 3, 'the other DID\'s fetch at the directory');
    assert.equal(seen.length, 2, 'the refresh asked for while the failing directory holds a fetch of the DID waits for it');
    answer();
    assert.equal(await rotation, 'unreachable');
    assert.equal(await next, 'rotated.test', 'then it fetches, and gets the newer document');
    assert.equal(await other, 'not_found');
    assert.equal(seen.length, 3);
  });

  test('a directory that never answers times out; fetches at once and waiting are bounded', async (t) => {
    const plc = await directory(t, () => {}); // never answers
    const { resolver } = resolverFor(t, plc.url, { timeoutMs: 300, maxConcurrent: 3, maxQueued: 4 });
    const dids = Array.from({ length: 8 }, (_, i) => `did:plc:slow${i}`);
    const results = await Promise.all(dids.map((did) => resolver.resolve(did).then(() => 'resolved', (err: IdentityError) => err.reason)));
    assert.deepEqual(results.sort(), ['overloaded', 'timeout', 'timeout', 'timeout', 'timeout', 'timeout', 'timeout', 'timeout']);
    assert.equal(plc.stats.mostOpen, 3, 'no more than maxConcurrent fetches at once');
  });

  test('did:web is fetched from the host, and refused on loopback unless private endpoints are allowed', async (t) => {
    const host = await directory(t, (req, res) => {
      assert.equal(req.url, '/.well-known/did.json');
      res.end(JSON.stringify(plcDocument(`did:web:localhost%3A${host.port}`, KEY, 'https://pds.example.com')));
    });
    const did = `did:web:localhost%3A${host.port}`;
    const refused = resolverFor(t, 'http://127.0.0.1:1').resolver;
    await assert.rejects(refused.resolve(did), (err: IdentityError) => err.reason === 'refused_endpoint');
    assert.equal(host.stats.requests, 0, 'nothing was fetched');
    const allowed = resolverFor(t, 'http://127.0.0.1:1', { allowPrivateEndpoints: true }).resolver;
    assert.equal((await allowed.resolve(did)).signingKey, KEY);
    await assert.rejects(allowed.resolve('did:web:example.com:path'), (err: IdentityError) => err.reason === 'unsupported_did');
  });
});

describe('IdentityCache', () => {
  test('keeps at most maxEntries, evicting the least recently fetched, and survives a reopen', async (t) => {
    const dir = tempDir('contrail-identity-cache-');
    t.after(() => dir.remove());
    const identity = (n: number, fetchedAt: number) => ({ did: `did:plc:n${n}`, signingKey: KEY, pdsEndpoint: undefined, handle: undefined, fetchedAt });
    let cache = new IdentityCache({ path: dir.path, maxEntries: 3, memoryEntries: 1 });
    cache.put(identity(1, 10));
    cache.put(identity(2, 20));
    cache.put(identity(3, 30));
    cache.put(identity(1, 40)); // refreshed: now the youngest
    cache.put(identity(4, 50));
    assert.equal(cache.size, 3);
    assert.equal(cache.get('did:plc:n2'), undefined, 'the oldest fetch was evicted');
    await cache.close();
    cache = new IdentityCache({ path: dir.path, maxEntries: 3 });
    assert.equal(cache.size, 3);
    assert.deepEqual(['did:plc:n1', 'did:plc:n3', 'did:plc:n4'].map((did) => cache.get(did)?.fetchedAt), [40, 30, 50]);
    cache.delete('did:plc:n3');
    assert.equal(cache.size, 2);
    assert.equal(cache.get('did:plc:n3'), undefined);
    await cache.close();
  });

  test('its data file is mapped once however far it grows to its bound (lmdb-js would map it again at each doubling and keep the old maps)', async (t) => {
    const dir = tempDir('contrail-identity-cache-');
    t.after(() => dir.remove());
    const cache = new IdentityCache({ path: dir.path, maxEntries: 20_000 });
    t.after(() => cache.close());
    for (let n = 0; n < 20_000; n++) cache.put({ did: `did:plc:${String(n).padStart(24, 'a')}`, signingKey: KEY, pdsEndpoint: `https://pds${n}.example.com`, handle: `h${n}.example.com`, fetchedAt: n });
    const file = join(dir.path, 'data.mdb');
    assert.ok(statSync(file).size > 2 << 20, `the file grew past 2 MB (${statSync(file).size} B)`);
    assert.equal(readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.endsWith(file)).length, 1);
    assert.equal(cache.get('did:plc:' + '0'.padStart(24, 'a'))?.handle, 'h0.example.com');
  });
});

describe('endpoint guard', () => {
  test('non-public addresses are recognised, IPv4-mapped IPv6 included', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fd00::1', 'fe80::1', 'fec0::1', '::ffff:127.0.0.1', '::ffff:a9fe:a9fe']) {
      assert.equal(isNonPublicAddress(address), true, address);
    }
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      assert.equal(isNonPublicAddress(address), false, address);
    }
  });

  test('URLs with private literals, localhost, credentials or other schemes are refused before connecting', () => {
    for (const url of ['http://127.0.0.1:2583', 'https://[::1]/', 'http://169.254.169.254/latest/meta-data', 'http://localhost:3000', 'http://[::ffff:7f00:1]/', 'file:///etc/passwd', 'https://user:pw@pds.example.com']) {
      assert.throws(() => checkEndpointUrl(url, false), RefusedEndpointError, url);
    }
    assert.equal(checkEndpointUrl('https://pds.example.com/', false).host, 'pds.example.com');
    assert.equal(checkEndpointUrl('http://127.0.0.1:2583', true).port, '2583');
  });

  test('a host name is checked against every address it resolves to', async () => {
    const error = await new Promise<Error | null>((resolve) => guardedLookup('localhost', {}, (err) => resolve(err)));
    assert.ok(error instanceof RefusedEndpointError, 'localhost resolves to loopback');
  });

  test('getGuarded refuses a private endpoint and reaches it when allowed', async (t) => {
    const server = await directory(t, (_req, res) => res.end('ok'));
    await assert.rejects(getGuarded(server.url, { allowPrivateEndpoints: false, timeoutMs: 1000 }), RefusedEndpointError);
    const response = await getGuarded(server.url, { allowPrivateEndpoints: true, timeoutMs: 1000 });
    assert.equal(response.statusCode, 200);
    response.resume();
    assert.equal(server.stats.requests, 1);
  });
});
