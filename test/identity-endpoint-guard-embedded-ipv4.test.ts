/**
 * The SSRF guard unwraps IPv6 addresses that carry an IPv4 address: NAT64's well-known prefix
 * 64:ff9b::/96 (RFC 6052; on an IPv6-only host with DNS64, [64:ff9b::a9fe:a9fe] reaches
 * 169.254.169.254) and 6to4's 2002::/16 are judged by the IPv4 address inside, so a private,
 * loopback or link-local one is refused while a public one (what DNS64 gives for every public
 * name) stays reachable. The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) is refused whole.
 * So are IPv4-compatible (::a.b.c.d, deprecated but still routed to the IPv4 address by some
 * stacks) and IPv4-translated (::ffff:0:a.b.c.d, SIIT) addresses judged by the IPv4 inside.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RefusedEndpointError, checkEndpointUrl, isNonPublicAddress } from '../src/identity/index.ts';

test('IPv6 addresses that embed a private, loopback or link-local IPv4 address are non-public; those embedding a public one are public', () => {
  for (const address of ['64:ff9b::a9fe:a9fe', '64:ff9b::169.254.169.254', '64:ff9b::7f00:1', '64:ff9b::a00:5', '64:ff9b:1::a00:5', '64:ff9b:1:ffff::808:808', '2002:a9fe:a9fe::1', '2002:7f00:1::1', '2002:c0a8:101::']) {
    assert.equal(isNonPublicAddress(address), true, `${address} is let through`);
  }
  for (const address of ['64:ff9b::808:808', '64:ff9b::8.8.8.8', '2002:808:808::1', '2001:4860:4860::8888']) {
    assert.equal(isNonPublicAddress(address), false, `${address} is refused`);
  }
  assert.throws(() => checkEndpointUrl('http://[64:ff9b::a9fe:a9fe]/', false), RefusedEndpointError);
  assert.equal(checkEndpointUrl('https://[64:ff9b::808:808]/', false).hostname, '[64:ff9b::808:808]');
});

test('IPv4-compatible (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d) addresses are judged by the IPv4 address they carry', () => {
  for (const address of ['::127.0.0.1', '::7f00:1', '::169.254.169.254', '::a9fe:a9fe', '::10.0.0.5', '::ffff:0:127.0.0.1', '::ffff:0:7f00:1', '::ffff:0:169.254.169.254', '::ffff:0:c0a8:101', '0:0:0:0:ffff:0:a00:5']) {
    assert.equal(isNonPublicAddress(address), true, `${address} is let through`);
  }
  for (const address of ['::8.8.8.8', '::808:808', '::ffff:0:8.8.8.8', '::ffff:0:808:808', '::ffff:1:808:808']) {
    assert.equal(isNonPublicAddress(address), false, `${address} is refused`);
  }
  assert.throws(() => checkEndpointUrl('http://[::ffff:0:a9fe:a9fe]/', false), RefusedEndpointError);
  assert.throws(() => checkEndpointUrl('http://[::127.0.0.1]/', false), RefusedEndpointError);
});
