/**
 * did:web documents are served by hosts anyone runs; did:plc ones by the operator's PLC directory,
 * which resolves nearly every repo. A host that holds its answers (a tarpit: any account can make
 * a did:web on one, and an #identity event makes contrail fetch it again) must not hold up did:plc
 * lookups: they shared one set of fetch slots (16), so a handful of such hosts kept every slot for
 * a whole timeout, and under --verify every new repo on the network waited behind them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createIdentityMetrics, IdentityCache, IdentityError, IdentityResolver } from '../src/identity/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { Gate, localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';

test('did:web hosts that hold their answers do not hold up did:plc lookups', async (t) => {
  const defer = cleanup(t);
  const gate = new Gate();
  const release = gate.stall();
  defer(release); // the held hosts answer before their servers close
  const maxConcurrent = 4;
  let held = 0;
  const hosts = [];
  for (let i = 0; i < maxConcurrent; i++) {
    hosts.push(await localHttpServer(t, (_req, res) => {
      held++;
      void gate.passed.then(() => res.writeHead(404).end());
    }));
  }
  const plc = await localHttpServer(t, (req, res) => res.end(JSON.stringify({ id: req.url!.slice(1) })));
  const dir = tempDir('contrail-identity-');
  defer(() => dir.remove());
  const cache = new IdentityCache({ path: dir.path, maxEntries: 100 });
  defer(() => cache.close());
  // Private endpoints allowed: the did:web hosts are on 127.0.0.1. A timeout far longer than the test.
  const resolver = new IdentityResolver({ plcUrl: plc.url, cache, allowPrivateEndpoints: true, metrics: createIdentityMetrics(new Registry()), maxConcurrent, timeoutMs: 120_000 });

  const webLookups = hosts.map(({ url }) => resolver.resolve(`did:web:localhost%3A${new URL(url).port}`).then(() => 'resolved', (err: IdentityError) => err.reason));
  await waitUntil(() => held === maxConcurrent, 'every did:web host to be asked, and to hold its answer');
  let plcLookup: string | undefined;
  resolver.resolve('did:plc:ewvi7nxzyoun6zhxrhs64oiz').then(
    (identity) => (plcLookup = identity.did),
    (err: IdentityError) => (plcLookup = err.reason),
  );
  await waitUntil(() => plcLookup !== undefined, 'the did:plc lookup, while every did:web host holds its answer', 15_000);
  assert.equal(plcLookup, 'did:plc:ewvi7nxzyoun6zhxrhs64oiz');

  release();
  assert.deepEqual(await Promise.all(webLookups), Array(maxConcurrent).fill('not_found'), 'the held hosts answer in the end');
});
