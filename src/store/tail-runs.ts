import { crc32 } from 'node:zlib';
import type { Entry } from '../events/index.ts';
import { DamagedBlockError } from './blocks.ts';
import { decodeRecords } from './codec.ts';

/**
 * A tail run as stored: a tag byte, the CRC-32 of its records (big-endian), then the records
 * (codec.ts). Sealed blocks have zstd's frame checksum; LMDB keeps none, so without this a run
 * whose bytes changed on disk was read back as sound events at the next start. A run written
 * before runs carried one starts with a record, whose time_us's high byte is 0 (below 2^56 µs,
 * the year 4253): it is read unchecked. (A checked run whose tag byte alone changed to 0 reads
 * as such a run, whose records then start with the checksum's bytes and fail to decode.)
 * The run's LMDB key, its newest event's time_us, is not under the checksum: the start checks it
 * against the records (EventStore), so a run whose key changed is damaged too.
 */
const CHECKED = 0x01;
const HEADER_BYTES = 5;

/** The stored form of a run of records (one copy, with its header). */
export function storedRun(records: Buffer): Buffer {
  const value = Buffer.allocUnsafe(HEADER_BYTES + records.byteLength);
  value[0] = CHECKED;
  value.writeUInt32BE(crc32(records), 1);
  records.copy(value, HEADER_BYTES);
  return value;
}

/** A stored run's events (views of `value`); throws, saying why, if it is not what was written. */
export function readRun(value: Buffer): Entry[] {
  if (value.length === 0 || value[0] === 0) return decodeRecords(value);
  if (value[0] !== CHECKED || value.length < HEADER_BYTES) throw new Error(`a tail run with an unknown header byte ${value[0]}`);
  const records = value.subarray(HEADER_BYTES);
  if (crc32(records) !== value.readUInt32BE(1)) throw new Error('a tail run failed its checksum (its bytes changed on disk)');
  return decodeRecords(records);
}

/**
 * Events a start found lost in a damaged tail run, or in a block whose directory entry does not
 * decode: time_us `first` to `end` (the run's key, the block's end).
 * Kept in `meta` (tailDamage) until retention passes them, so that every reader, on any thread and
 * after the events around them are sealed, names them as lost instead of reading past them.
 */
export type LostEvents = [first: number, end: number];

/**
 * The bound a read that starts after `position` may read to, short of the first lost events
 * after it (`end`, or the time_us before them: the read then ends there, as a full one); a
 * DamagedBlockError when the next events are lost ones.
 */
export function boundBeforeLost(position: number, end: number, lost: readonly LostEvents[]): { end: number; short: boolean } {
  for (const [first, last] of lost) {
    if (last <= position) continue;
    if (position >= first - 1) throw new DamagedBlockError(first, last, 'a start found them unreadable: a tail run that failed its checksum, or a block whose directory entry did not decode', true);
    if (first - 1 < end) return { end: first - 1, short: true };
    break;
  }
  return { end, short: false };
}
