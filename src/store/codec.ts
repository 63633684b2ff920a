import type { Entry, EventKind } from '../events/index.ts';

/**
 * One stored event, as the tail keeps it and as a block holds it before compression: its key
 * fields, the metadata filters read (kind, DID, collection), then the event's JSON bytes.
 *
 *   u64 timeUs | u48 seq | u8 kind | u16 didLength | did | u16 collectionLength | collection
 *   | u32 jsonLength | json
 *
 * DIDs and NSIDs are ASCII (checked upstream), so latin1 is an exact, fast decoding.
 */
const KINDS: readonly EventKind[] = ['commit', 'identity', 'account', 'sync'];
const KIND_CODES: Record<EventKind, number> = { commit: 0, identity: 1, account: 2, sync: 3 };
const SEQ_BYTES = 6;
const FIXED_BYTES = 8 + SEQ_BYTES + 1 + 2 + 2 + 4;
const TWO_32 = 2 ** 32;

export function recordSize(entry: Entry): number {
  return FIXED_BYTES + entry.did.length + (entry.collection?.length ?? 0) + entry.json.byteLength;
}

/**
 * The records of `entries`, one after another, in one buffer. `allocate` may be
 * Buffer.allocUnsafeSlow for a buffer that owns its memory (to transfer it to another thread:
 * small buffers otherwise share Node's pool).
 */
export function encodeRecords(entries: readonly Entry[], allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  let total = 0;
  for (const entry of entries) total += recordSize(entry);
  const out = allocate(total);
  let at = 0;
  for (const entry of entries) at = writeRecord(out, at, entry);
  return out;
}

/**
 * The records of `entries` in one buffer, each copied whole from the record it was committed in
 * or read from (a stored entry's JSON is the end of its record): sealing a block copies bytes
 * rather than writing every field again. An entry whose JSON does not end its record is refused.
 */
export function copyRecords(entries: readonly Entry[]): Buffer {
  let total = 0;
  for (const entry of entries) total += recordSize(entry);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const entry of entries) {
    const size = recordSize(entry);
    const { json } = entry;
    out.set(new Uint8Array(json.buffer, json.byteOffset + json.byteLength - size, size), at);
    if (readTimeUs(out, at) !== entry.timeUs || out.readUIntBE(at + 8, SEQ_BYTES) !== entry.seq) {
      throw new Error(`the event at time_us ${entry.timeUs} is not held in a stored record`);
    }
    at += size;
  }
  return out;
}

/** Writes the record of entry at `at`; returns where it ends. */
function writeRecord(out: Buffer, at: number, entry: Entry): number {
  const { did, collection, json } = entry;
  const seq = entry.seq!;
  out.writeUInt32BE(Math.floor(entry.timeUs / TWO_32), at);
  out.writeUInt32BE(entry.timeUs % TWO_32, at + 4);
  out.writeUInt16BE(Math.floor(seq / TWO_32), at + 8);
  out.writeUInt32BE(seq % TWO_32, at + 10);
  at += 8 + SEQ_BYTES;
  out[at] = KIND_CODES[entry.kind];
  out.writeUInt16BE(did.length, at + 1);
  at = writeLatin1(out, at + 3, did);
  out.writeUInt16BE(collection?.length ?? 0, at);
  at = collection === null ? at + 2 : writeLatin1(out, at + 2, collection);
  out.writeUInt32BE(json.byteLength, at);
  out.set(json, at + 4);
  return at + 4 + json.byteLength;
}

/** Writes `text` as latin1 at `at`; returns where it ends. For strings as short as DIDs and NSIDs a loop beats Buffer#write's call. */
function writeLatin1(out: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/**
 * The entries stored in `bytes`, in order. Their JSON are views of `bytes` (a copy made for them,
 * or a decompressed partition's slab, reused only once every read holding it is released:
 * slabs.ts). A record that runs past the end is reported as corrupt rather than misread.
 */
export function decodeRecords(bytes: Buffer): Entry[] {
  const entries: Entry[] = [];
  for (let at = 0; at < bytes.length; at = recordEnd) entries.push(readRecord(bytes, at, true)!);
  return entries;
}

/**
 * The record with this time_us among `bytes`' records (ascending time_us), decoding only that
 * one: an index lookup needs one event of a partition, not the partition's hundreds of objects.
 */
export function findRecord(bytes: Buffer, timeUs: number): Entry | undefined {
  for (let at = 0; at < bytes.length; ) {
    const recordTimeUs = readTimeUs(bytes, at);
    if (recordTimeUs > timeUs) return undefined;
    const entry = readRecord(bytes, at, recordTimeUs === timeUs);
    if (entry) return entry;
    at = recordEnd;
  }
  return undefined;
}

function readTimeUs(bytes: Buffer, at: number): number {
  if (at + FIXED_BYTES > bytes.length) throw new Error(`corrupt stored event at byte ${at}: truncated header`);
  return bytes.readUInt32BE(at) * TWO_32 + bytes.readUInt32BE(at + 4);
}

/** Where the record readRecord last read ends (a variable, not a result object: scans read millions). */
let recordEnd = 0;

/** The record at `start` (decoded only when `decode`); sets recordEnd. */
function readRecord(bytes: Buffer, start: number, decode: boolean): Entry | undefined {
  const timeUs = readTimeUs(bytes, start);
  const at = start + 8 + SEQ_BYTES;
  const kind = KINDS[bytes[at]!];
  const didEnd = at + 3 + bytes.readUInt16BE(at + 1);
  if (kind === undefined || didEnd + 6 > bytes.length) throw new Error(`corrupt stored event at byte ${start}: bad header`);
  const collectionEnd = didEnd + 2 + bytes.readUInt16BE(didEnd);
  const jsonAt = collectionEnd + 4;
  if (jsonAt > bytes.length) throw new Error(`corrupt stored event at byte ${start}: bad header`);
  const jsonEnd = jsonAt + bytes.readUInt32BE(collectionEnd);
  if (jsonEnd > bytes.length) throw new Error(`corrupt stored event at byte ${start}: JSON runs past the end`);
  recordEnd = jsonEnd;
  if (!decode) return undefined;
  return new StoredEntry(timeUs, bytes.readUInt16BE(start + 8) * TWO_32 + bytes.readUInt32BE(start + 10), kind, bytes, start, bytes.subarray(jsonAt, jsonEnd));
}

/**
 * An event read from its stored record. Its DID and collection become strings only when first
 * read: a replay whose filter names no DID or collection sends the JSON view and never reads
 * them, and making two strings per event was a third of a scan's decoding.
 */
class StoredEntry implements Entry {
  #did: string | undefined;
  #collection: string | null | undefined;

  constructor(
    readonly timeUs: number,
    readonly seq: number,
    readonly kind: EventKind,
    /** The buffer holding the record, and where the record starts in it. */
    private readonly record: Buffer,
    private readonly start: number,
    readonly json: Buffer,
  ) {}

  get did(): string {
    if (this.#did === undefined) {
      const at = this.start + 8 + SEQ_BYTES + 1;
      this.#did = this.record.toString('latin1', at + 2, at + 2 + this.record.readUInt16BE(at));
    }
    return this.#did;
  }

  get collection(): string | null {
    if (this.#collection === undefined) {
      const didAt = this.start + 8 + SEQ_BYTES + 1;
      const at = didAt + 2 + this.record.readUInt16BE(didAt);
      const length = this.record.readUInt16BE(at);
      this.#collection = length === 0 ? null : this.record.toString('latin1', at + 2, at + 2 + length);
    }
    return this.#collection;
  }
}
