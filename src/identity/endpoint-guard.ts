import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Addresses a URL taken from a DID document must not reach: loopback, private (RFC 1918, ULA, and
 * the deprecated site-local fec0::/10, still routed inside sites that use it), link-local (cloud metadata services live there), carrier-grade NAT, multicast, reserved and
 * unspecified ranges. BlockList matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4
 * rules itself, so those cannot smuggle a private address past the list; the other IPv6 forms
 * that carry an IPv4 address (NAT64, 6to4, IPv4-compatible, IPv4-translated) are unwrapped by
 * embeddedIpv4 below.
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
  ['fec0::', 10],
  ['ff00::', 8],
  // NAT64 for local use (RFC 8215): the operator picks the prefix length, so where the IPv4
  // address sits is not known here, and nothing behind it is public anyway.
  ['64:ff9b:1::', 48],
] as const) {
  nonPublic.addSubnet(prefix, bits, 'ipv6');
}

/** True for an IP address that is not a public unicast address (see nonPublic). */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) throw new Error(`${JSON.stringify(address)} is not an IP address`);
  if (family === 4) return nonPublic.check(address, 'ipv4');
  if (nonPublic.check(address, 'ipv6')) return true;
  const ipv4 = embeddedIpv4(address);
  return ipv4 !== undefined && nonPublic.check(ipv4, 'ipv4');
}

/**
 * The IPv4 address an IPv6 address carries or reaches through a translator or tunnel: NAT64's
 * well-known prefix 64:ff9b::/96 (RFC 6052: on an IPv6-only host with DNS64, 64:ff9b::a9fe:a9fe
 * is 169.254.169.254), 6to4's 2002::/16 (RFC 3056: the 32 bits after the prefix), and the last
 * 32 bits of IPv4-compatible ::/96 (RFC 4291, deprecated; a stack may still route ::127.0.0.1 to
 * 127.0.0.1) and IPv4-translated ::ffff:0:0/96 (RFC 2765, SIIT).
 */
function embeddedIpv4(address: string): string | undefined {
  const words = ipv6Words(address);
  const zero = (from: number, to: number) => words.slice(from, to).every((word) => word === 0);
  if (words[0] === 0x64 && words[1] === 0xff9b && zero(2, 6)) return ipv4Of(words[6]!, words[7]!);
  if (words[0] === 0x2002) return ipv4Of(words[1]!, words[2]!);
  if (zero(0, 6) || (zero(0, 4) && words[4] === 0xffff && words[5] === 0)) return ipv4Of(words[6]!, words[7]!);
  return undefined;
}

/** The eight 16-bit words of an IPv6 address (one isIP accepts: `::` shorthand, a dotted IPv4 tail, a zone). */
function ipv6Words(address: string): number[] {
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((word) => parseInt(word, 16)));
  const first = parse(head);
  const last = tail === undefined ? [] : parse(tail);
  return [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
}

function ipv4Of(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
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
