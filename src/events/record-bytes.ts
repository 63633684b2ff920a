import { base32Length, headLength, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NEGINT, MAJOR_STRING, MAJOR_TAG, MAJOR_UINT, readArgument, writeBase32 } from '../atproto/index.ts';
import type { ByteWriter } from './byte-writer.ts';
import { recordToJson, writeString } from './record-json.ts';

/**
 * A DAG-CBOR record block → Jetstream's JSON bytes, appended to `writer`: the same bytes
 * recordToJson gives (it is the reference, and a fuzz test holds the two equal), read straight
 * from the block's bytes. A string that needs no escaping — nearly all of them — is copied as it
 * is, never decoded to a JS string and encoded again; a link is base32-encoded from its bytes.
 *
 * Only the shapes records are made of are read here: canonical integers below 2^53, plain ASCII
 * keys, well-formed UTF-8, CIDv1 sha2-256 links, true/false/null. Anything else — every input
 * recordToJson refuses among it — makes this give the block to recordToJson instead, so what
 * is accepted, and the error for what is not, is decided in one place.
 */
export function writeRecordJson(writer: ByteWriter, block: Uint8Array): void {
  const start = writer.length;
  out = writer;
  data = block;
  pos = 0;
  const read = data[0] !== undefined && data[0] >> 5 === MAJOR_MAP && writeValue(true) && pos === data.length;
  data = EMPTY;
  if (read) return;
  writer.length = start;
  writer.utf8(recordToJson(block));
}

const EMPTY = new Uint8Array(0);
/** The block being read, the read position and the output: module state, since writeRecordJson is never re-entered. */
let data: Uint8Array = EMPTY;
let pos = 0;
let out: ByteWriter;

const FALSE = 0xf4;
const TRUE = 0xf5;
const NULL = 0xf6;
const QUOTE = 0x22;
const DOLLAR = 0x24;

/** The argument of the item head at `pos`, advancing past it; -1 (not read here) when readArgument refuses it. */
function readHead(): number {
  const value = readArgument(data, pos);
  if (value >= 0) pos += headLength(data[pos]!);
  return value;
}

/** Writes the item at `pos` as JSON; false when it is not one of the shapes read here. */
function writeValue(isRecord = false): boolean {
  const initial = data[pos];
  if (initial === undefined) return false;
  switch (initial >> 5) {
    case MAJOR_UINT: {
      const value = readHead();
      if (value < 0) return false;
      out.ascii(String(value));
      return true;
    }
    case MAJOR_NEGINT: {
      const value = readHead();
      if (value < 0 || value >= Number.MAX_SAFE_INTEGER) return false; // -1 - value must be a safe integer, as cborg's is
      out.ascii(String(-1 - value));
      return true;
    }
    case MAJOR_BYTES: {
      const length = readHead();
      if (length < 0 || pos + length > data.length) return false;
      const base64 = Buffer.from(data.buffer, data.byteOffset + pos, length).toString('base64');
      pos += length;
      out.ascii('{"$bytes":"');
      out.ascii(base64.replace(/=+$/, ''));
      out.ascii('"}');
      return true;
    }
    case MAJOR_STRING:
      return writeString8();
    case MAJOR_ARRAY: {
      const count = readHead();
      // Each item takes a byte at least: a larger count is malformed (recordToJson's to refuse).
      if (count < 0 || count > data.length - pos) return false;
      out.byte(0x5b); // [
      for (let i = 0; i < count; i++) {
        if (i > 0) out.byte(0x2c); // ,
        if (!writeValue()) return false;
      }
      out.byte(0x5d); // ]
      return true;
    }
    case MAJOR_MAP:
      return writeMap(isRecord);
    case MAJOR_TAG:
      return writeLink();
    default:
      pos += 1;
      if (initial === FALSE) out.ascii('false');
      else if (initial === TRUE) out.ascii('true');
      else if (initial === NULL) out.ascii('null');
      else return false; // floats, undefined, other simple values: recordToJson's
      return true;
  }
}

/** ASCII bytes a JSON string holds as they are: not a control character, `"`, `\\`, or the HTML-sensitive `<`, `>`, `&`. */
const PLAIN_ASCII = new Uint8Array(128).map((_, byte) => (byte >= 0x20 && byte !== QUOTE && byte !== 0x5c && byte !== 0x3c && byte !== 0x3e && byte !== 0x26 ? 1 : 0));
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function writeString8(): boolean {
  const length = readHead();
  const end = pos + length;
  if (length < 0 || end > data.length) return false;
  if (isPlainUtf8(pos, end)) {
    out.byte(QUOTE);
    out.bytes(data, pos, end);
    out.byte(QUOTE);
  } else {
    // recordToJson decodes as TextDecoder does by default: a leading BOM dropped, bad UTF-8 replaced. Those are its own.
    if (data[pos] === 0xef && data[pos + 1] === 0xbb && data[pos + 2] === 0xbf) return false;
    let text: string;
    try {
      text = strictUtf8.decode(data.subarray(pos, end));
    } catch {
      return false;
    }
    out.utf8(writeString(text));
  }
  pos = end;
  return true;
}

/**
 * Whether start..end is well-formed UTF-8 (the Unicode standard's table 3-7: no overlong forms,
 * surrogates or code points past U+10FFFF) that JSON holds as it is: no byte PLAIN_ASCII rejects,
 * no U+2028 or U+2029 (which Go escapes), no leading BOM (which recordToJson drops).
 */
function isPlainUtf8(start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const byte = data[i]!;
    if (byte < 0x80) {
      if (PLAIN_ASCII[byte] === 0) return false;
      i++;
      continue;
    }
    let size: number;
    let low = 0x80; // the second byte's range
    let high = 0xbf;
    if (byte >= 0xc2 && byte <= 0xdf) size = 2;
    else if (byte >= 0xe0 && byte <= 0xef) {
      size = 3;
      if (byte === 0xe0) low = 0xa0;
      else if (byte === 0xed) high = 0x9f;
      else if (byte === 0xe2 && data[i + 1] === 0x80 && (data[i + 2] === 0xa8 || data[i + 2] === 0xa9)) return false;
      else if (byte === 0xef && i === start && data[i + 1] === 0xbb && data[i + 2] === 0xbf) return false;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      size = 4;
      if (byte === 0xf0) low = 0x90;
      else if (byte === 0xf4) high = 0x8f;
    } else return false;
    if (i + size > end) return false;
    const second = data[i + 1]!;
    if (second < low || second > high) return false;
    for (let k = 2; k < size; k++) if ((data[i + k]! & 0xc0) !== 0x80) return false;
    i += size;
  }
  return true;
}

/** Whether a key byte keeps the key plain (JSON writes it as it is): [A-Za-z0-9_$#.:-]. */
const PLAIN_KEY_BYTE = new Uint8Array(256).map((_, byte) => (/[\w$#.:-]/.test(String.fromCharCode(byte)) && byte < 0x80 ? 1 : 0));

/**
 * Map entries being written, four numbers each: key start and end (in the block), value start
 * and end (in the output). A stack shared by nested maps: each uses the slots above its parent's.
 */
const entries: number[] = [];
let entriesTop = 0;

function writeMap(isRecord: boolean): boolean {
  const count = readHead();
  // Each entry takes two bytes at least: a larger count is malformed (recordToJson's to refuse),
  // and must not move the entries stack far past what it holds.
  if (count < 0 || count > (data.length - pos) >> 1) return false;
  const base = entriesTop;
  entriesTop += count * 4;
  try {
    const valuesStart = out.length;
    let type = -1;
    for (let i = 0; i < count; i++) {
      const keyHead = data[pos];
      if (keyHead === undefined || keyHead >> 5 !== MAJOR_STRING) return false;
      const keyLength = readHead();
      const keyStart = pos;
      const keyEnd = pos + keyLength;
      if (keyLength < 0 || keyEnd > data.length) return false;
      for (let k = keyStart; k < keyEnd; k++) if (PLAIN_KEY_BYTE[data[k]!] === 0) return false;
      if (data[keyStart] === DOLLAR) {
        if (matches(keyStart, keyLength, '$type')) type = i;
        else if (matches(keyStart, keyLength, '$link') || matches(keyStart, keyLength, '$bytes')) return false; // reserved: recordToJson refuses them
      }
      pos = keyEnd;
      const valueStart = out.length;
      if (!writeValue()) return false;
      const at = base + i * 4;
      entries[at] = keyStart;
      entries[at + 1] = keyEnd;
      entries[at + 2] = valueStart;
      entries[at + 3] = out.length;
    }
    let isBlob = false;
    if (isRecord || type >= 0) {
      // $type must be a non-empty string: its JSON starts with a quote and holds more than two.
      const at = base + type * 4;
      if (type < 0 || out.buffer[entries[at + 2]!] !== QUOTE || entries[at + 3]! - entries[at + 2]! <= 2) return false;
      isBlob = isBlobType(entries[at + 2]!, entries[at + 3]!);
    }
    if (!sortKeys(base, count)) return false;
    const objectStart = out.length;
    if (isBlob) {
      if (!writeBlob(base, count)) return false;
    } else {
      out.byte(0x7b); // {
      for (let i = 0; i < count; i++) writeEntry(base + i * 4, i > 0);
      out.byte(0x7d); // }
    }
    // The values were written in the block's order below the object: move the object down over them.
    out.buffer.copyWithin(valuesStart, objectStart, out.length);
    out.length = valuesStart + out.length - objectStart;
    return true;
  } finally {
    entriesTop = base;
  }
}

function matches(start: number, length: number, text: string): boolean {
  if (length !== text.length) return false;
  for (let i = 0; i < length; i++) if (data[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Sorts the map's entries by key bytes, Go's order (insertion sort: records' maps are small); false on a duplicate key. */
function sortKeys(base: number, count: number): boolean {
  for (let i = 1; i < count; i++) {
    const at = base + i * 4;
    const keyStart = entries[at]!;
    const keyEnd = entries[at + 1]!;
    const valueStart = entries[at + 2]!;
    const valueEnd = entries[at + 3]!;
    let j = i - 1;
    for (; j >= 0; j--) {
      const order = compareKeys(entries[base + j * 4]!, entries[base + j * 4 + 1]!, keyStart, keyEnd);
      if (order === 0) return false; // duplicate key: recordToJson's error
      if (order < 0) break;
      const from = base + j * 4;
      entries[from + 4] = entries[from]!;
      entries[from + 5] = entries[from + 1]!;
      entries[from + 6] = entries[from + 2]!;
      entries[from + 7] = entries[from + 3]!;
    }
    const to = base + (j + 1) * 4;
    entries[to] = keyStart;
    entries[to + 1] = keyEnd;
    entries[to + 2] = valueStart;
    entries[to + 3] = valueEnd;
  }
  return true;
}

function compareKeys(aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const aLength = aEnd - aStart;
  const bLength = bEnd - bStart;
  const shorter = Math.min(aLength, bLength);
  for (let i = 0; i < shorter; i++) {
    const difference = data[aStart + i]! - data[bStart + i]!;
    if (difference !== 0) return difference;
  }
  return aLength - bLength;
}

function writeEntry(at: number, comma: boolean): void {
  if (comma) out.byte(0x2c);
  out.byte(QUOTE);
  out.bytes(data, entries[at]!, entries[at + 1]!);
  out.ascii('":');
  // The value was written below, in this same buffer: reserve first, as growing it moves it.
  const valueStart = entries[at + 2]!;
  const valueEnd = entries[at + 3]!;
  out.reserve(valueEnd - valueStart);
  out.buffer.copyWithin(out.length, valueStart, valueEnd);
  out.length += valueEnd - valueStart;
}

const BLOB_TYPE = Buffer.from('"blob"');

function isBlobType(valueStart: number, valueEnd: number): boolean {
  return valueEnd - valueStart === BLOB_TYPE.length && out.buffer.compare(BLOB_TYPE, 0, BLOB_TYPE.length, valueStart, valueEnd) === 0;
}

const LINK_VALUE_START = Buffer.from('{"$link":');

/** A blob's entries, sorted ($type, mimeType, ref, size), in Jetstream's order: $type, ref, mimeType, size. */
function writeBlob(base: number, count: number): boolean {
  if (count !== 4) return false;
  const mimeType = base + 4;
  const ref = base + 8;
  const size = base + 12;
  if (!matches(entries[mimeType]!, entries[mimeType + 1]! - entries[mimeType]!, 'mimeType')) return false;
  if (!matches(entries[ref]!, entries[ref + 1]! - entries[ref]!, 'ref')) return false;
  if (!matches(entries[size]!, entries[size + 1]! - entries[size]!, 'size')) return false;
  const buffer = out.buffer;
  const refStart = entries[ref + 2]!;
  if (entries[ref + 3]! - refStart < LINK_VALUE_START.length || buffer.compare(LINK_VALUE_START, 0, LINK_VALUE_START.length, refStart, refStart + LINK_VALUE_START.length) !== 0) return false;
  if (buffer[entries[mimeType + 2]!] !== QUOTE) return false;
  // size: digits only (a non-negative integer)
  for (let i = entries[size + 2]!; i < entries[size + 3]!; i++) if (buffer[i]! < 0x30 || buffer[i]! > 0x39) return false;
  out.byte(0x7b); // {
  writeEntry(base, false);
  writeEntry(ref, true);
  writeEntry(mimeType, true);
  writeEntry(size, true);
  out.byte(0x7d); // }
  return true;
}

const LINK_START = Buffer.from('{"$link":"b');
const LINK_END = Buffer.from('"}');

/**
 * A tag-42 link to a CIDv1 dag-cbor or raw block with a sha2-256 digest — every link a record
 * holds — as `{"$link":"b…"}` (multibase base32, lower case, unpadded). Other CIDs are recordToJson's.
 */
function writeLink(): boolean {
  // d8 2a: tag 42; 58 25: 37 bytes; 00: DAG-CBOR's prefix; 01 codec 12 20: CIDv1, sha2-256, 32 bytes.
  if (pos + 41 > data.length || data[pos] !== 0xd8 || data[pos + 1] !== 0x2a || data[pos + 2] !== 0x58 || data[pos + 3] !== 37) return false;
  if (data[pos + 4] !== 0 || data[pos + 5] !== 1 || (data[pos + 6] !== 0x71 && data[pos + 6] !== 0x55) || data[pos + 7] !== 0x12 || data[pos + 8] !== 0x20) return false;
  const cidStart = pos + 5;
  const cidEnd = pos + 41;
  out.bytes(LINK_START);
  out.reserve(base32Length(36));
  out.length = writeBase32(data, cidStart, cidEnd, out.buffer, out.length);
  out.bytes(LINK_END);
  pos = cidEnd;
  return true;
}
