import { headLength, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NEGINT, MAJOR_STRING, MAJOR_TAG, MAJOR_UINT, readArgument } from './cbor-head.ts';
import { Link } from './link.ts';

/**
 * The DAG-CBOR item at `start` as the values a ViewDecoder with DAG-CBOR's strict options and
 * tag 42 as Link makes — plain objects, arrays, strings, numbers, booleans, null, byte strings
 * as views of `bytes`, Links — and where it ends; undefined when the item is not one of the
 * shapes read here. The caller then decodes it with that ViewDecoder, which decides what is
 * refused and with which error.
 *
 * Why: a frame body is a dozen keys, a few ops and one large byte string, and cborg's generic
 * decode (a Token object per item, options consulted at every step) was a fifth of ingest's CPU.
 * Read here: canonical integers below 2^53, definite lengths, string keys (not `__proto__`, not
 * repeated), tag 42 holding a 0x00-prefixed byte string, true/false/null. Everything else —
 * floats, undefined, big integers, other tags, every malformed input — is the ViewDecoder's.
 */
export function readDagCbor(bytes: Uint8Array, start: number): { value: unknown; end: number } | undefined {
  // Views of a plain Uint8Array, as the ViewDecoder makes (and cheaper than Buffer's subarray).
  data = bytes instanceof Buffer ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  input = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = start;
  depth = 0;
  let value: unknown = NOT_READ;
  try {
    value = readValue();
  } catch {
    // Whatever this reader trips on is the ViewDecoder's to judge, as for any shape not read here.
  }
  const end = pos;
  data = EMPTY;
  input = EMPTY_BUFFER;
  return value === NOT_READ ? undefined : { value, end };
}

const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);
/** The input and the read position: module state, since readDagCbor is synchronous and never re-entered. */
let data: Uint8Array = EMPTY;
/** The input as a Buffer, whose latin1 decoding makes an ASCII string in one native call. */
let input: Buffer = EMPTY_BUFFER;
let pos = 0;
/** Arrays and maps open around the item being read. Nesting deeper than frames have is left to the ViewDecoder (which refuses input too deep for the stack as malformed), so this reader never recurses far. */
let depth = 0;
const MAX_DEPTH = 64;
/** What readValue returns for an item it does not read. */
const NOT_READ = Symbol('not read');


/** The argument of the item head at `pos`, advancing past it; -1 (left to the ViewDecoder) when readArgument refuses it. */
function readHead(): number {
  const value = readArgument(data, pos);
  if (value >= 0) pos += headLength(data[pos]!);
  return value;
}

const utf8 = new TextDecoder(); // cborg's own: a leading BOM dropped, bad sequences replaced

function readValue(): unknown {
  const initial = data[pos];
  if (initial === undefined) return NOT_READ;
  switch (initial >> 5) {
    case MAJOR_UINT: {
      const value = readHead();
      return value < 0 ? NOT_READ : value;
    }
    case MAJOR_NEGINT: {
      const value = readHead();
      return value < 0 || value >= Number.MAX_SAFE_INTEGER ? NOT_READ : -1 - value;
    }
    case MAJOR_BYTES: {
      const length = readHead();
      if (length < 0 || pos + length > data.length) return NOT_READ;
      pos += length;
      return data.subarray(pos - length, pos);
    }
    case MAJOR_STRING:
      return readString();
    case MAJOR_ARRAY: {
      const count = readHead();
      // Each item takes a byte at least: a count beyond the input is malformed (the ViewDecoder's).
      if (count < 0 || count > data.length - pos || ++depth > MAX_DEPTH) return NOT_READ;
      const array: unknown[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const item = readValue();
        if (item === NOT_READ) return NOT_READ;
        array[i] = item;
      }
      depth--;
      return array;
    }
    case MAJOR_MAP: {
      const count = readHead();
      if (count < 0 || ++depth > MAX_DEPTH) return NOT_READ;
      const map: Record<string, unknown> = {};
      for (let i = 0; i < count; i++) {
        if (data[pos] === undefined || data[pos]! >> 5 !== MAJOR_STRING) return NOT_READ;
        const key = readKey();
        if (key === NOT_READ || key === '__proto__' || Object.hasOwn(map, key)) return NOT_READ;
        const value = readValue();
        if (value === NOT_READ) return NOT_READ;
        map[key] = value;
      }
      depth--;
      return map;
    }
    case MAJOR_TAG: {
      // d8 2a: tag 42, then a byte string that starts with DAG-CBOR's 0x00 prefix.
      if (initial !== 0xd8 || data[pos + 1] !== 42) return NOT_READ;
      pos += 2;
      if (data[pos] === undefined || data[pos]! >> 5 !== MAJOR_BYTES) return NOT_READ;
      const bytes = readValue() as Uint8Array | typeof NOT_READ;
      if (bytes === NOT_READ || bytes[0] !== 0) return NOT_READ;
      return new Link(bytes.subarray(1));
    }
    default:
      pos += 1;
      if (initial === 0xf4) return false;
      if (initial === 0xf5) return true;
      if (initial === 0xf6) return null;
      return NOT_READ; // floats, undefined, other simple values
  }
}

/**
 * Map keys recently read, by a hash of their bytes: a frame's keys are the same dozen or so
 * every time, and a string already made (and interned by the first property it named) costs
 * nothing to use again, where a new one must be built and then looked up as a property name.
 */
const recentKeys: Array<string | undefined> = new Array(256);

function readKey(): string | typeof NOT_READ {
  const head = pos;
  const length = readHead();
  const end = pos + length;
  if (length < 0 || end > data.length) return NOT_READ;
  if (length >= 32) {
    pos = head;
    return readString();
  }
  let hash = length;
  for (let i = pos; i < end; i++) {
    const byte = data[i]!;
    if (byte >= 0x80) {
      pos = head;
      return readString();
    }
    hash = (hash * 31 + byte) | 0;
  }
  const slot = hash & 255;
  const recent = recentKeys[slot];
  if (recent !== undefined && recent.length === length && isAsciiAt(recent, pos)) {
    pos = end;
    return recent;
  }
  pos = head;
  const key = readString() as string;
  recentKeys[slot] = key;
  return key;
}

function isAsciiAt(text: string, at: number): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) !== data[at + i]) return false;
  return true;
}

/**
 * cborg's decoding exactly: ASCII (nearly every string of a frame) as latin1, which decodes it
 * the same, in one native call — a loop adding a character at a time cost twice as much from a
 * dozen characters on; very short strings by that loop; anything else by cborg's TextDecoder.
 */
function readString(): string | typeof NOT_READ {
  const length = readHead();
  const end = pos + length;
  if (length < 0 || end > data.length) return NOT_READ;
  const start = pos;
  pos = end;
  if (length < SHORT_STRING) {
    let short = '';
    for (let i = start; i < end; i++) {
      const byte = data[i]!;
      if (byte >= 0x80) return utf8.decode(data.subarray(start, end));
      short += String.fromCharCode(byte);
    }
    return short;
  }
  for (let i = start; i < end; i++) if (data[i]! >= 0x80) return utf8.decode(data.subarray(start, end));
  return input.toString('latin1', start, end);
}

/** Strings shorter than this are made a character at a time (a native call costs more for them). */
const SHORT_STRING = 8;
