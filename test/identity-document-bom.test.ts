/**
 * A DID document whose body begins with a UTF-8 byte order mark is read as the document after it.
 * JSON (RFC 8259 §8.1) lets a parser ignore a BOM, and atproto's reference resolver
 * (@atproto/identity) reads did:web and PLC documents with fetch's `response.json()`, whose UTF-8
 * decode drops one: a host that saves its did.json with a BOM is resolved there, so it must be here.
 * Only one is dropped; what follows must still be JSON.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createIdentityMetrics, IdentityCache, IdentityError, IdentityResolver } from '../src/identity/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';

const KEY = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme';
const BOM = '\ufeff';

function document(did: string) {
  return {
    id: did,
    alsoKnownAs: ['at://alice.test'],
    verificationMethod: [{ id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: KEY.slice('did:key:'.length) }],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: 'https://pds.example.com' }],
  };
}

test('a did:web document and a PLC document that begin with a BOM are read; one with two is not JSON', async (t) => {
  const defer = cleanup(t);
  let prefix = BOM;
  const server = createServer((req, res) => {
    const did = req.url === '/.well-known/did.json' ? `did:web:localhost%3A${(server.address() as AddressInfo).port}` : decodeURIComponent(req.url!.slice(1));
    res.setHeader('content-type', 'application/json');
    res.end(prefix + JSON.stringify(document(did)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.closeAllConnections());
  const port = (server.address() as AddressInfo).port;
  const dir = tempDir('contrail-identity-');
  defer(() => dir.remove());
  const cache = new IdentityCache({ path: dir.path, maxEntries: 10 });
  defer(() => cache.close());
  const resolver = new IdentityResolver({ plcUrl: `http://127.0.0.1:${port}`, cache, allowPrivateEndpoints: true, metrics: createIdentityMetrics(new Registry()) });

  assert.equal((await resolver.resolve(`did:web:localhost%3A${port}`)).signingKey, KEY, 'the did:web document');
  assert.equal((await resolver.resolve('did:plc:bomfirstaaaaaaaaaaaaaaaa')).signingKey, KEY, 'the PLC document');
  prefix = BOM + BOM;
  await assert.rejects(resolver.resolve('did:plc:bomtwiceaaaaaaaaaaaaaaaa'), (err: unknown) => err instanceof IdentityError && err.reason === 'bad_document' && /not JSON/.test(err.message));
});
