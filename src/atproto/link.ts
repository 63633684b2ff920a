import { base32Multibase } from './base32.ts';

/**
 * A CID link from a frame body, kept as its binary bytes: the ingest path only compares them
 * with CAR block CIDs and prints the few it emits, so no CID object is ever built for it.
 */
export class Link {
  constructor(readonly bytes: Uint8Array) {}

  /** True for CIDv1 dag-cbor sha2-256, the only kind an atproto record may have. */
  get isDagCborSha256(): boolean {
    const b = this.bytes;
    return b.length === 36 && b[0] === 0x01 && b[1] === 0x71 && b[2] === 0x12 && b[3] === 0x20;
  }

  get digest(): Uint8Array {
    return this.bytes.subarray(this.bytes.length - 32);
  }

  toString(): string {
    return base32Multibase(this.bytes);
  }
}

/** cborg tag-42 decoder producing Links (DAG-CBOR prefixes the binary CID with 0x00). */
export function decodeLinkTag(decodeTagged: () => unknown): Link {
  const bytes = decodeTagged();
  if (!(bytes instanceof Uint8Array) || bytes[0] !== 0) throw new Error('tag 42 does not hold a 0x00-prefixed CID');
  return new Link(bytes.subarray(1));
}
