/**
 * Review test (fails on main): the SSRF guard's list of non-public addresses (endpoint-guard.ts)
 * has no IPv6 range that embeds an IPv4 address other than IPv4-mapped ::ffff:0:0/96. On an
 * IPv6-only host with DNS64/NAT64 (the well-known prefix 64:ff9b::/96, RFC 6052; AWS and GCP
 * offer it), `http://[64:ff9b::a9fe:a9fe]/` reaches 169.254.169.254 and `64:ff9b::a00:5`
 * reaches 10.0.0.5 — a DID document's PDS endpoint or a did:web host's DNS answer can name them.
 * Also missing: the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) and 6to4 2002::/16, whose
 * next 32 bits are an IPv4 address.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RefusedEndpointError, checkEndpointUrl, isNonPublicAddress } from '../src/identity/index.ts';

test('IPv6 addresses that embed a private, loopback or link-local IPv4 address are non-public', () => {
  for (const address of ['64:ff9b::a9fe:a9fe', '64:ff9b::7f00:1', '64:ff9b::a00:5', '64:ff9b:1::a00:5', '2002:a9fe:a9fe::1', '2002:7f00:1::1']) {
    assert.equal(isNonPublicAddress(address), true, `${address} is let through`);
  }
  assert.throws(() => checkEndpointUrl('http://[64:ff9b::a9fe:a9fe]/', false), RefusedEndpointError);
});
