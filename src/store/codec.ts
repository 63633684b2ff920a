import type { Entry, EventKind } from '../events/index.ts';

/**
 * A stored event: a small header with the store's seq and the fields filters read — kind, DID,
 * collection — then the event's JSON bytes, so replay can filter without parsing JSON.
 *
 *   u8 kind | u48 seq | u16 didLength | did | u16 collectionLength | collection | json…
 *
 * DIDs and NSIDs are ASCII (checked upstream), so latin1 is an exact, fast decoding.
 */
const KINDS: readonly EventKind[] = ['commit', 'identity', 'account'];
const KIND_CODES: Record<EventKind, number> = { commit: 0, identity: 1, account: 2 };

export function encodeEntry(entry: Entry): Buffer {
  const out = Buffer.allocUnsafe(storedSize(entry));
  writeEntry(out, 0, entry);
  return out;
}

/**
 * encodeEntry for a whole batch into one allocation: what a commit stores. Per-event buffers
 * cost more in allocation and GC than the copying itself.
 */
export function encodeBatch(entries: readonly Entry[]): Buffer[] {
  let total = 0;
  for (const entry of entries) total += storedSize(entry);
  const out = Buffer.allocUnsafeSlow(total);
  const encoded: Buffer[] = new Array(entries.length);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const start = at;
    at = writeEntry(out, at, entries[i]);
    encoded[i] = out.subarray(start, at);
  }
  return encoded;
}

export function decodeEntry(timeUs: number, stored: Buffer): Entry {
  return readEntry(stored, stored.length, timeUs);
}

const SEQ_BYTES = 6;
const DID_AT = 1 + SEQ_BYTES + 2;

function storedSize(entry: Entry): number {
  return DID_AT + 2 + entry.did.length + (entry.collection?.length ?? 0) + entry.json.byteLength;
}

/** Writes the stored form of entry at `at`; returns where it ends. */
function writeEntry(out: Buffer, at: number, entry: Entry): number {
  const collection = entry.collection ?? '';
  out[at] = KIND_CODES[entry.kind];
  out.writeUIntBE(entry.seq!, at + 1, SEQ_BYTES);
  out.writeUInt16BE(entry.did.length, at + 1 + SEQ_BYTES);
  at += DID_AT + out.write(entry.did, at + DID_AT, 'latin1');
  out.writeUInt16BE(collection.length, at);
  at += 2 + out.write(collection, at + 2, 'latin1');
  return at + entry.json.copy(out, at);
}

/** The entry stored in bytes[0, end); its json is a view of bytes. */
function readEntry(bytes: Buffer, end: number, timeUs: number): Entry {
  const didLength = (bytes[DID_AT - 2] << 8) | bytes[DID_AT - 1];
  const collectionAt = DID_AT + didLength;
  const collectionLength = (bytes[collectionAt] << 8) | bytes[collectionAt + 1];
  const jsonAt = collectionAt + 2 + collectionLength;
  return {
    timeUs,
    seq: bytes.readUIntBE(1, SEQ_BYTES),
    did: bytes.toString('latin1', DID_AT, collectionAt),
    kind: KINDS[bytes[0]],
    collection: collectionLength === 0 ? null : bytes.toString('latin1', collectionAt + 2, jsonAt),
    json: bytes.subarray(jsonAt, end),
  };
}

/**
 * The events database's lmdb-js encoder. Reads: with `needsStableBuffer: false` lmdb-js hands the
 * decoder its shared read buffer instead of copying every value into a fresh ArrayBuffer (replay
 * spent a third of its time allocating those). The decoded entry's `json` is a VIEW of that
 * buffer, valid only until the next read: the reader filters on the metadata first and calls
 * detachJson on the entries it keeps, so a selective filter copies almost nothing. The entry's
 * timeUs is 0: the key is the caller's to set. Writes take the bytes made by encodeEntry, wrapped
 * with lmdb's asBinary so they are stored as they are.
 */
export const storedEntryEncoder = {
  needsStableBuffer: false,
  encode(entry: Entry): Buffer {
    return encodeEntry(entry);
  },
  decode(stored: Uint8Array): Entry {
    // Usually a Buffer whose own `length` lmdb-js set to the value's size; a plain view otherwise.
    const bytes = Buffer.isBuffer(stored) ? stored : Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    return readEntry(bytes, stored.length, 0);
  },
};

/** Gives an entry decoded by storedEntryEncoder its own copy of the JSON; returns the entry. */
export function detachJson(entry: Entry): Entry {
  entry.json = copyOut(entry.json);
  return entry;
}

/**
 * Copies of stored JSON are carved out of 256 KiB slabs (Node's own pool is 8 KiB, so a replay
 * would make a new one every dozen events). A slab lives as long as any entry cut from it.
 */
const SLAB_BYTES = 256 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

function copyOut(bytes: Buffer): Buffer {
  const length = bytes.byteLength;
  if (length > SLAB_BYTES / 16) {
    const out = Buffer.allocUnsafeSlow(length);
    bytes.copy(out);
    return out;
  }
  if (slabUsed + length > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  bytes.copy(slab, slabUsed);
  const out = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += length;
  return out;
}
