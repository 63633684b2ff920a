import { compress, decompress } from 'zstd-napi';
import type { Entry } from '../events/index.ts';
import type { Batch } from '../store/index.ts';

/**
 * What one message of the cluster's event stream holds: a batch of events exactly as the leader
 * committed it (time_us already assigned, the upstream cursor it completes, the revs it sets), or
 * the marker a new leader publishes to fence out its predecessor.
 */
export type StreamRecord = { type: 'batch'; node: string; batch: Batch } | { type: 'leader'; node: string };

const BATCH = 0x42; // 'B'
const LEADER = 0x4c; // 'L'

/** An entry's fields other than its bytes, whatever the events stage puts there (time_us, seq, …). */
type EntryFields = Omit<Entry, 'json'>;

interface BatchHeader {
  /** The leader that appended it: for logs and for checking fencing. */
  node: string;
  cursor?: Batch['cursor'];
  revs: Array<[string, string]>;
  entries: EntryFields[];
  lengths: number[];
}

/**
 * Batch layout: 'B', then one zstd frame of [u32 header length][header JSON][each event's JSON].
 * One frame per batch compresses repeated keys and DIDs across events (about 5× on real traffic),
 * which is what the stream's disk holds for its whole retention.
 */
export function encodeStreamRecord(record: StreamRecord): Uint8Array {
  if (record.type === 'leader') return Buffer.concat([Buffer.of(LEADER), Buffer.from(JSON.stringify({ node: record.node }))]);
  const { entries, cursor, revs } = record.batch;
  const header: BatchHeader = {
    node: record.node,
    cursor,
    revs: [...revs],
    entries: entries.map(({ json: _json, ...fields }) => fields),
    lengths: entries.map((entry) => entry.json.byteLength),
  };
  const headerBytes = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(headerBytes.byteLength);
  const body = compress(Buffer.concat([prefix, headerBytes, ...entries.map((entry) => entry.json)]), { compressionLevel: 1 });
  return Buffer.concat([Buffer.of(BATCH), body]);
}

export function decodeStreamRecord(bytes: Uint8Array): StreamRecord {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data[0] === LEADER) {
    const { node } = JSON.parse(data.subarray(1).toString()) as { node: string };
    return { type: 'leader', node };
  }
  if (data[0] !== BATCH) throw new Error(`unknown stream record type 0x${(data[0] ?? 0).toString(16)}`);
  const body = decompress(data.subarray(1));
  const headerLength = body.readUInt32LE(0);
  const header = JSON.parse(body.subarray(4, 4 + headerLength).toString()) as BatchHeader;
  let offset = 4 + headerLength;
  const entries = header.entries.map((fields, i) => {
    const length = header.lengths[i]!;
    const entry = { ...fields, json: body.subarray(offset, offset + length) } as Entry;
    offset += length;
    return entry;
  });
  if (offset !== body.byteLength) throw new Error(`batch record has ${body.byteLength - offset} trailing bytes`);
  return { type: 'batch', node: header.node, batch: { entries, cursor: header.cursor, revs: new Map(header.revs) } };
}
