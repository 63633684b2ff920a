import { compress, decompress } from 'zstd-napi';
import type { Entry } from '../events/index.ts';
import { decodeRecords, encodeRecords, type Batch } from '../store/index.ts';

/**
 * What one message of the cluster's event stream holds: a batch of events exactly as the leader
 * committed it (time_us already assigned, the upstream cursor it completes, the revs it sets) or
 * one part of such a batch, or the marker a new leader publishes to fence out its predecessor.
 *
 * A batch too big for one NATS message is split into consecutive parts; `more` is set on every
 * part but the last. The parts are one commit: a follower applies them together when the last
 * arrives, and drops them if a leader marker comes first (their leader was deposed mid-batch). So
 * the upstream cursor travels only in the last part — a failover between two parts resumes the
 * relay from the previous batch's cursor and reads the whole batch again, never half of it — and
 * no rev is stored before all of its commit's events are.
 */
export type StreamRecord = { type: 'batch'; node: string; batch: Batch; more: boolean } | { type: 'leader'; node: string };

const BATCH = 0x52; // 'R': the events as stored records
/** The layout before (events' fields in the JSON header): read, never written, so that a stream an older leader filled is still followed. */
const JSON_FIELDS_BATCH = 0x42; // 'B'
const LEADER = 0x4c; // 'L'

interface BatchHeader {
  /** The leader that appended it: for logs and for checking fencing. */
  node: string;
  /** Set on every part of a split batch but its last. */
  more?: true;
  cursor?: Batch['cursor'];
  revs: Array<[string, string]>;
}

/** The older layout's header: every event's fields other than its JSON, and the JSON's lengths. */
interface JsonFieldsHeader extends BatchHeader {
  entries: Array<Omit<Entry, 'json'>>;
  lengths: number[];
}

/**
 * Batch layout: 'R', then one zstd frame of [u32 header length][header JSON][the events as the
 * store records them (codec.ts: time_us, seq, kind, DID, collection, JSON)]. The events' fields
 * travel in the store's binary record, which the store's codec writes in one pass into one buffer
 * and reads back without a JSON parse (a JSON list of every event's fields, before, cost the
 * leader and every follower several µs an event). One frame per batch compresses repeated keys
 * and DIDs across events (about 5× on real traffic), which is what the stream's disk holds for
 * its whole retention.
 */
export function encodeStreamRecord(record: StreamRecord): Uint8Array {
  if (record.type === 'leader') return Buffer.concat([Buffer.of(LEADER), Buffer.from(JSON.stringify({ node: record.node }))]);
  const { entries, cursor, revs } = record.batch;
  const header: BatchHeader = { node: record.node, ...(record.more && { more: true }), cursor, revs: [...revs] };
  const headerText = JSON.stringify(header);
  const headerBytes = Buffer.byteLength(headerText);
  const records = encodeRecords(entries, (size) => Buffer.allocUnsafe(4 + headerBytes + size).subarray(4 + headerBytes));
  // The records were written after room for the header: the whole is one buffer, copied by nothing.
  const body = Buffer.from(records.buffer, records.byteOffset - 4 - headerBytes, 4 + headerBytes + records.byteLength);
  body.writeUInt32LE(headerBytes, 0);
  body.write(headerText, 4);
  const compressed = compress(body, { compressionLevel: 1 });
  return Buffer.concat([Buffer.of(BATCH), compressed]);
}

export function decodeStreamRecord(bytes: Uint8Array): StreamRecord {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data[0] === LEADER) {
    const { node } = JSON.parse(data.subarray(1).toString()) as { node: string };
    return { type: 'leader', node };
  }
  if (data[0] !== BATCH && data[0] !== JSON_FIELDS_BATCH) throw new Error(`unknown stream record type 0x${(data[0] ?? 0).toString(16)}`);
  const body = decompress(data.subarray(1));
  const headerLength = body.readUInt32LE(0);
  const header = JSON.parse(body.toString('utf8', 4, 4 + headerLength)) as BatchHeader;
  if (data[0] === JSON_FIELDS_BATCH) return decodeJsonFieldsBatch(header as JsonFieldsHeader, body, 4 + headerLength);
  // Plain entries (the codec's read the DID and the collection lazily from the body, holding on to
  // it): their JSON are views of the body until the store copies them into its own records.
  const entries = decodeRecords(body.subarray(4 + headerLength)).map(
    (read): Entry => ({ timeUs: read.timeUs, seq: read.seq, did: read.did, kind: read.kind, collection: read.collection, json: read.json }),
  );
  return { type: 'batch', node: header.node, batch: { entries, revs: new Map(header.revs), ...(header.cursor && { cursor: header.cursor }) }, more: header.more === true };
}

function decodeJsonFieldsBatch(header: JsonFieldsHeader, body: Buffer, eventsAt: number): StreamRecord {
  let offset = eventsAt;
  const entries = header.entries.map((fields, i): Entry => {
    const json = body.subarray(offset, offset + header.lengths[i]!);
    offset += json.byteLength;
    return { ...fields, json };
  });
  if (offset !== body.byteLength) throw new Error(`batch record has ${body.byteLength - offset} trailing bytes`);
  return { type: 'batch', node: header.node, batch: { entries, revs: new Map(header.revs), ...(header.cursor && { cursor: header.cursor }) }, more: header.more === true };
}

/** Room for a record's type byte, header and zstd's framing around one event. */
const ONE_EVENT_OVERHEAD_BYTES = 1_024;

/** Whether an event fits a record of at most maxBytes on its own (cheap unless it is near the limit). */
export function fitsOneRecord(node: string, entry: Entry, maxBytes: number): boolean {
  if (entry.json.byteLength * 1.01 + ONE_EVENT_OVERHEAD_BYTES <= maxBytes) return true;
  return encodeStreamRecord({ type: 'batch', node, batch: { entries: [entry], revs: new Map() }, more: false }).byteLength <= maxBytes;
}

interface PartContent {
  entries: Entry[];
  revs: Array<[string, string]>;
}

/** The older layout's header: every event's fields other than its JSON, and the JSON's lengths. */
interface JsonFieldsHeader extends BatchHeader {
  entries: Array<Omit<Entry, 'json'>>;
  lengths: number[];
}

/** About what an event's fields in its stored record (time_us to collection: ~75 bytes) and a rev in the header cost before compression, with room to spare. */
const ENTRY_FIELDS_BYTES = 120;
const REV_BYTES = 90;

type BatchRecord = Extract<StreamRecord, { type: 'batch' }>;

/**
 * A batch as the stream messages that carry it: one when it fits `maxBytes`, else parts (see
 * StreamRecord) cut at event boundaries. Parts aim at 3/4 of the limit by the whole batch's
 * compression ratio; one that still does not fit is halved. Revs are spread over the parts with
 * the events (a big catch-up batch holds one per repo), and the cursor rides in the last part.
 */
export function encodeBatchRecords(node: string, batch: Batch, maxBytes: number): Uint8Array[] {
  const wholeRecord: BatchRecord = { type: 'batch', node, batch, more: false };
  const whole = encodeStreamRecord(wholeRecord);
  if (whole.byteLength <= maxBytes) return [whole];
  const revs = [...batch.revs];
  const rawBytes = batch.entries.reduce((sum, entry) => sum + entry.json.byteLength + ENTRY_FIELDS_BYTES, 0) + revs.length * REV_BYTES;
  const budget = (0.75 * maxBytes * rawBytes) / whole.byteLength;
  const groups: PartContent[] = [];
  let group: PartContent = { entries: [], revs: [] };
  let groupBytes = 0;
  const add = (size: number, put: (into: PartContent) => void) => {
    if (groupBytes + size > budget && groupBytes > 0) {
      groups.push(group);
      group = { entries: [], revs: [] };
      groupBytes = 0;
    }
    put(group);
    groupBytes += size;
  };
  for (const entry of batch.entries) add(entry.json.byteLength + ENTRY_FIELDS_BYTES, (into) => into.entries.push(entry));
  for (const rev of revs) add(REV_BYTES, (into) => into.revs.push(rev));
  groups.push(group);

  const parts: Uint8Array[] = [];
  while (groups.length > 0) {
    const next = groups.shift()!;
    const last = groups.length === 0;
    const record: BatchRecord = {
      type: 'batch',
      node,
      batch: { entries: next.entries, revs: new Map(next.revs), ...(last && { cursor: batch.cursor }) },
      more: !last,
    };
    const bytes = encodeStreamRecord(record);
    if (bytes.byteLength <= maxBytes) {
      parts.push(bytes);
      continue;
    }
    groups.unshift(...halves(next, bytes.byteLength, maxBytes));
  }
  return parts;
}

/** A part that did not fit, as two smaller ones (each with some of its content). */
function halves(part: PartContent, recordBytes: number, maxBytes: number): [PartContent, PartContent] {
  const { entries, revs } = part;
  if (entries.length >= 2 || revs.length >= 2) {
    const entriesHalf = Math.ceil(entries.length / 2);
    const revsHalf = Math.ceil(revs.length / 2);
    return [
      { entries: entries.slice(0, entriesHalf), revs: revs.slice(0, revsHalf) },
      { entries: entries.slice(entriesHalf), revs: revs.slice(revsHalf) },
    ];
  }
  if (entries.length === 1 && revs.length === 1) return [{ entries, revs: [] }, { entries: [], revs }];
  // The writer takes out events that cannot fit alone (fitsOneRecord) before it splits.
  throw new Error(`a stream record of one ${entries.length ? 'event' : 'rev'} is ${recordBytes} bytes, over the ${maxBytes} a NATS message may hold`);
}
