/**
 * The per-DID index is an LMDB dupsort table: the key is an 8-byte hash of the DID, its sorted
 * values — fixed 10 bytes each (DUPFIXED) — the DID's events: time_us (8 bytes, big-endian, so
 * values sort by time) and partition (2 bytes, so a reader finds the one frame to decompress).
 * Why dupsort: the key is stored once per DID rather than once per event and DUPFIXED packs the
 * values ~400 to a page, so an event costs ~10 B of index instead of ~46 B (16-byte key, node
 * header, 2-byte value, B-tree pages ~70 % full; measured with the network's Zipf mix). A hash,
 * not the DID: keys stay 8 bytes whatever the DID's length; two DIDs that share a hash only cost
 * a reader a candidate its exact filter then rejects.
 */
const TWO_32 = 2 ** 32;

export const DID_HASH_BYTES = 8;
export const POSTING_BYTES = 10;

/** lmdb-js's 'binary' encoding cannot bound a dupsort value range; this one can (and copies what it reads). */
export const postingEncoding = {
  needsStableBuffer: true,
  encode: (value: Buffer) => value,
  decode: (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  writeKey: (key: Uint8Array, target: Uint8Array, at: number) => {
    target.set(key, at);
    return at + key.length;
  },
};

export function posting(timeUs: number, part: number): Buffer {
  const value = Buffer.allocUnsafe(POSTING_BYTES);
  value.writeUInt32BE(Math.floor(timeUs / TWO_32), 0);
  value.writeUInt32BE(timeUs % TWO_32, 4);
  value.writeUInt16BE(part, 8);
  return value;
}

export function timeOfPosting(value: Buffer): number {
  return value.readUInt32BE(0) * TWO_32 + value.readUInt32BE(4);
}

export function partOfPosting(value: Buffer): number {
  return value.readUInt16BE(8);
}

/** Two independent 32-bit multiplicative hashes (cyrb53's mixing) over the DID's characters. */
export function didHash(did: string): Buffer {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < did.length; i++) {
    const c = did.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const key = Buffer.allocUnsafe(DID_HASH_BYTES);
  key.writeUInt32BE(h1 >>> 0, 0);
  key.writeUInt32BE(h2 >>> 0, 4);
  return key;
}
