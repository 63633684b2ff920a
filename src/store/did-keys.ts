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
  return writePosting(Buffer.allocUnsafe(POSTING_BYTES), timeUs, part);
}

function writePosting(value: Buffer, timeUs: number, part: number): Buffer {
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

/** The two halves of the DID hash hashDid computed last (module state: the index writes thousands per block). */
let hashHigh = 0;
let hashLow = 0;

/** Two independent 32-bit multiplicative hashes (cyrb53's mixing) over the DID's characters. */
function hashDid(did: string): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < did.length; i++) {
    const c = did.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  hashHigh = h1 >>> 0;
  hashLow = h2 >>> 0;
}

export function didHash(did: string): Buffer {
  hashDid(did);
  const key = Buffer.allocUnsafe(DID_HASH_BYTES);
  key.writeUInt32BE(hashHigh, 0);
  key.writeUInt32BE(hashLow, 4);
  return key;
}

/** Whether `did`'s hash is `key`, the key of an index range: the range lists only such DIDs' events. */
export function hashesTo(did: string, key: Buffer): boolean {
  hashDid(did);
  return key.readUInt32BE(0) === hashHigh && key.readUInt32BE(4) === hashLow;
}

/**
 * A block's postings, visited in key order: each insert or delete then lands next to the one
 * before it in the B-tree (warm pages and cursor paths) instead of anywhere, and no posting
 * allocates its own key and value.
 */
export class Postings {
  readonly #high: Uint32Array;
  readonly #low: Uint32Array;
  readonly #times: Float64Array;
  readonly #parts: Uint16Array;
  #count = 0;
  #order: number[] | undefined;

  constructor(capacity: number) {
    this.#high = new Uint32Array(capacity);
    this.#low = new Uint32Array(capacity);
    this.#times = new Float64Array(capacity);
    this.#parts = new Uint16Array(capacity);
  }

  get count(): number {
    return this.#count;
  }

  add(did: string, timeUs: number, part: number): void {
    hashDid(did);
    const i = this.#count++;
    this.#high[i] = hashHigh;
    this.#low[i] = hashLow;
    this.#times[i] = timeUs;
    this.#parts[i] = part;
    this.#order = undefined;
  }

  /**
   * Calls `visit` with the key and value of the postings from..to (in key order, a DID's in the
   * order added). The two buffers are reused from call to call: `visit` must be done with them
   * when it returns, as LMDB's synchronous puts and removes are.
   */
  forEachInKeyOrder(visit: (key: Buffer, value: Buffer) => void, from = 0, to = this.#count): void {
    const high = this.#high;
    const low = this.#low;
    // Array.prototype.sort is stable: one DID's postings keep their time order.
    this.#order ??= Array.from({ length: this.#count }, (_, i) => i).sort((a, b) => high[a]! - high[b]! || low[a]! - low[b]!);
    const key = Buffer.allocUnsafe(DID_HASH_BYTES);
    const value = Buffer.allocUnsafe(POSTING_BYTES);
    for (let at = from; at < to; at++) {
      const i = this.#order[at]!;
      key.writeUInt32BE(high[i]!, 0);
      key.writeUInt32BE(low[i]!, 4);
      writePosting(value, this.#times[i]!, this.#parts[i]!);
      visit(key, value);
    }
  }
}
