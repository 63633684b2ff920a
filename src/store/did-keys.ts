/**
 * Keys of the per-DID index: an 8-byte hash of the DID, then the event's time_us (big-endian,
 * so one DID's events are one ordered key range). The value is the event's partition (2 bytes),
 * so a reader finds its block without decoding anything else. A hash, not the DID: keys stay
 * 16 bytes whatever the DID's length; two DIDs that share a hash only cost a reader a candidate
 * its exact filter then rejects.
 */
const TWO_32 = 2 ** 32;

export const DID_KEY_BYTES = 16;

export function didKey(did: string, timeUs: number): Buffer {
  const key = Buffer.allocUnsafe(DID_KEY_BYTES);
  writeDidHash(key, did);
  writeTime(key, timeUs);
  return key;
}

export function timeOfDidKey(key: Uint8Array): number {
  const view = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return view.readUInt32BE(8) * TWO_32 + view.readUInt32BE(12);
}

function writeTime(key: Buffer, timeUs: number): void {
  key.writeUInt32BE(Math.floor(timeUs / TWO_32), 8);
  key.writeUInt32BE(timeUs % TWO_32, 12);
}

/** Two independent 32-bit multiplicative hashes (cyrb53's mixing) over the DID's characters. */
function writeDidHash(key: Buffer, did: string): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < did.length; i++) {
    const c = did.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  key.writeUInt32BE(h1 >>> 0, 0);
  key.writeUInt32BE(h2 >>> 0, 4);
}
