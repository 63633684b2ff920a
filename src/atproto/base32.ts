/**
 * RFC 4648 base32, lower case, unpadded: multibase `b`, the form atproto writes every CIDv1 in.
 * Written into a byte buffer, since its users put the text straight into bytes (an
 * event's JSON) or make one short string of it; multiformats' generic codec costs several times more.
 */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const ALPHABET_CODES = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));

/** Characters base32 needs for `byteCount` bytes. */
export function base32Length(byteCount: number): number {
  return Math.ceil((byteCount * 8) / 5);
}

/** Writes the base32 of source[start..end) into target at `at` (room for base32Length of it); returns where it ends. */
export function writeBase32(source: Uint8Array, start: number, end: number, target: Uint8Array, at: number): number {
  let bits = 0;
  let value = 0;
  for (let i = start; i < end; i++) {
    value = ((value << 8) | source[i]!) & 0xfff; // at most 4 bits carried over + 8 new
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      target[at++] = ALPHABET_CODES[(value >>> bits) & 31]!;
    }
  }
  if (bits > 0) target[at++] = ALPHABET_CODES[(value << (5 - bits)) & 31]!;
  return at;
}

const scratch = Buffer.allocUnsafe(128);

/** The multibase string (`b` + base32) of a CID's bytes. */
export function base32Multibase(bytes: Uint8Array): string {
  const target = bytes.length <= 78 ? scratch : Buffer.allocUnsafe(1 + base32Length(bytes.length));
  target[0] = 0x62; // b
  const end = writeBase32(bytes, 0, bytes.length, target, 1);
  return target.toString('latin1', 0, end);
}
