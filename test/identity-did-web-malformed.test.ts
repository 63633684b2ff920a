/**
 * Review (session 16): a did:web whose host is not percent-decodable (`%zz`, which DID syntax
 * lets through) failed inside the fetch with decodeURIComponent's "URI malformed" and was counted
 * and remembered as `unreachable`, as though its host had been tried. It is `unsupported_did`, as
 * every other did:web that names no host is, refused before any lookup.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createIdentityMetrics, IdentityCache, IdentityError, IdentityResolver } from '../src/identity/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';

test('a did:web whose host is not percent-decodable is unsupported_did, not unreachable', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-identity-');
  defer(() => dir.remove());
  const cache = new IdentityCache({ path: dir.path, maxEntries: 10 });
  defer(() => cache.close());
  const registry = new Registry();
  // Private endpoints allowed: nothing but the DID itself stands between it and a lookup.
  const resolver = new IdentityResolver({ plcUrl: 'http://127.0.0.1:9', cache, allowPrivateEndpoints: true, metrics: createIdentityMetrics(registry) });
  for (const did of ['did:web:example%zz.com', 'did:web:%E0%A4%A']) {
    await assert.rejects(resolver.resolve(did), (err: unknown) => err instanceof IdentityError && err.reason === 'unsupported_did' && /not a host name/.test(err.message), did);
  }
  assert.match(await registry.metrics(), /contrail_identity_resolutions_total\{result="unsupported_did"\} 2\n/);
});
