/**
 * A DID document may be up to 64 KiB, and did:web ones are written by anyone. What the resolver
 * keeps of one (its #atproto key, its PDS's origin, its handle) was taken as long as the document
 * made it: a handle of 30,000 characters (any at:// alias, handle or not), a Multikey with a
 * thousand bytes after its point, a PDS host name of a thousand characters. Each went into the
 * identity cache, whose LMDB map is reserved at 4 KiB an entry so that it never has to grow:
 * ten such documents in a cache of ten entries grew its data file to 385 KB, past the 40 KB
 * reserved, and lmdb-js mapped it again (every old map kept). What atproto allows is kept: a
 * handle only if it is one, a key only if it is a compressed point, a host only if DNS can name it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdentityCache, IdentityError, IdentityResolver } from '../src/identity/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';
import { base58btc } from 'multiformats/bases/base58';

const KEY = 'zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme';
const did = (n: number) => `did:plc:fieldbounds${String(n).padStart(13, '0')}`;

function document(id: string, { key = KEY, pds = 'https://pds.example.com', alias = 'at://alice.example.com' } = {}): string {
  return JSON.stringify({
    id,
    alsoKnownAs: [alias],
    verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: id, publicKeyMultibase: key }],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pds }],
  });
}

test('a DID document\'s key, PDS host and handle are kept only within what atproto allows', async (t) => {
  const defer = cleanup(t);
  const documents = new Map<string, string>([
    [did(1), document(did(1), { alias: `at://${'a'.repeat(30_000)}.example.com` })],
    [did(2), document(did(2), { alias: 'at://not a handle!' })],
    [did(3), document(did(3), { key: base58btc.encode(Uint8Array.from([...base58btc.decode(KEY), ...new Uint8Array(1_000)])) })],
    [did(4), document(did(4), { pds: `https://${'a'.repeat(1_000)}.example.com` })],
  ]);
  const { url } = await localHttpServer(t, (req, res) => res.end(documents.get(req.url!.slice(1))));
  const dir = tempDir('contrail-identity-field-bounds-');
  defer(() => dir.remove());
  const cache = new IdentityCache({ path: dir.path, maxEntries: 100 });
  defer(() => cache.close());
  const resolver = new IdentityResolver({ plcUrl: url, cache, allowPrivateEndpoints: true, failureTtlMs: 0 });
  defer(() => resolver.stop());

  for (const n of [1, 2]) {
    const identity = await resolver.resolve(did(n));
    assert.equal(identity.handle?.slice(0, 40), undefined, `an alias that is not a handle is no handle (${did(n)})`);
    assert.equal(identity.signingKey, `did:key:${KEY}`, 'the rest of the document is read');
  }
  await assert.rejects(resolver.resolve(did(3)), (err: IdentityError) => err.reason === 'bad_document' && /not an elliptic-curve point \(1033 bytes\)/.test(err.message));
  await assert.rejects(resolver.resolve(did(4)), (err: IdentityError) => err.reason === 'bad_document' && /#atproto_pds endpoint .* is not a host name/.test(err.message));
  assert.equal(cache.size, 2);
});
