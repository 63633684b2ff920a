/**
 * A DID directory (or did:web host) that answers its headers at once and then sends the document
 * slowly, or not at all, is a slow directory: the fetch's deadline covers the body, and passing it
 * is a `timeout`, as README Metrics says (`contrail_identity_resolutions_total{result="timeout"}`
 * growing means the directory is slow). Such a fetch was counted `unreachable`, its error
 * "aborted": the deadline destroyed the request, and the body's stream failed with the socket's
 * reset rather than the deadline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createIdentityMetrics, IdentityCache, IdentityError, IdentityResolver } from '../src/identity/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';

test('a directory that sends its headers, then the document too slowly or not at all, times out', async (t) => {
  const defer = cleanup(t);
  const { url } = await localHttpServer(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{');
    if (req.url!.endsWith('stalled')) return; // nothing more
    // One byte every 50 ms: never silent for long, never done.
    const drip = setInterval(() => res.write(' '), 50);
    res.once('close', () => clearInterval(drip));
  });
  const dir = tempDir('contrail-identity-');
  defer(() => dir.remove());
  const cache = new IdentityCache({ path: dir.path, maxEntries: 10 });
  defer(() => cache.close());
  const registry = new Registry();
  const resolver = new IdentityResolver({ plcUrl: url, cache, allowPrivateEndpoints: false, metrics: createIdentityMetrics(registry), timeoutMs: 500 });
  for (const did of ['did:plc:stalled', 'did:plc:trickling']) {
    await assert.rejects(resolver.resolve(did), (err: unknown) => {
      assert.ok(err instanceof IdentityError);
      assert.equal(err.reason, 'timeout', `${did}: ${err.message}`);
      assert.match(err.message, /500 ms/, `${did}: the message names the deadline`);
      return true;
    });
  }
  assert.match(await registry.metrics(), /contrail_identity_resolutions_total\{result="timeout"\} 2\n/);
});
