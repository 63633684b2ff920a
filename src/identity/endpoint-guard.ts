import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Addresses a URL taken from a DID document must not reach: loopback, private (RFC 1918, ULA),
 * link-local (cloud metadata services live there), carrier-grade NAT, multicast, reserved and
 * unspecified ranges. BlockList matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4
 * rules itself, so those cannot smuggle a private address past the list.
 */
const nonPublic = new BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  nonPublic.addSubnet(prefix, bits, 'ipv4');
}
for (const [prefix, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  nonPublic.addSubnet(prefix, bits, 'ipv6');
}

/** True for an IP address that is not a public unicast address (see nonPublic). */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) throw new Error(`${JSON.stringify(address)} is not an IP address`);
  return nonPublic.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export class RefusedEndpointError extends Error {}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http(s).request that refuses a host name resolving to any non-public address.
 * The socket connects to the addresses vetted here, so a DNS answer that changes between a
 * check and the connection (DNS rebinding) cannot slip through.
 */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const refused = addresses.find((entry) => isNonPublicAddress(entry.address));
    if (refused) {
      return callback(new RefusedEndpointError(`${hostname} resolves to the non-public address ${refused.address}`), []);
    }
    if (options.all) return callback(null, addresses);
    const [first] = addresses;
    if (first === undefined) return callback(new Error(`${hostname} resolves to no address`), []);
    callback(null, first.address, first.family);
  });
}

/**
 * Checks a URL that came from a DID document (a PDS endpoint, a did:web host) before anything
 * connects to it: http(s) only, and unless private endpoints are allowed, no literal non-public
 * IP. Host names are checked at connection time by guardedLookup. Returns the parsed URL.
 */
export function checkEndpointUrl(text: string, allowPrivateEndpoints: boolean): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RefusedEndpointError(`${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RefusedEndpointError(`${url.protocol} endpoints are not fetched (http and https only)`);
  if (url.username || url.password) throw new RefusedEndpointError('endpoints with credentials in the URL are refused');
  if (!allowPrivateEndpoints) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0 && isNonPublicAddress(host)) {
      throw new RefusedEndpointError(`${host} is a non-public address (allowed only with --allow-private-endpoints)`);
    }
    if (host === 'localhost' || host.endsWith('.localhost')) throw new RefusedEndpointError(`${host} is loopback (allowed only with --allow-private-endpoints)`);
  }
  return url;
}
