import { CidLinkWrapper } from '@atcute/cbor';

/**
 * An MST node's DAG-CBOR (`{e: [{k, p, t, v}, …], l}`), read and written byte by byte. A node
 * is a few fixed fields, and through the generic codec (@atcute/cbor) a `full` check spent
 * about half of its MST time building, sorting and walking maps for them.
 *
 * The reader takes exactly the bytes that the generic codec's strict DAG-CBOR reading accepts
 * for a node with those fields and no others — shortest lengths, map keys in canonical order,
 * CIDs as 36-byte dag-cbor or raw sha2-256 links — and returns undefined for anything else, which
 * mst-node.ts hands to the generic decoder: a node reads (and fails) exactly as it did through it.
 * The writer gives the bytes the generic encoder gives (the fuzz test compares the roots).
 */
export interface StoredEntry {
  /** Bytes of the key shared with the previous one. */
  p: number;
  /** The rest of the key, UTF-8. */
  k: Uint8Array;
  v: CidLinkWrapper;
  t: CidLinkWrapper | null;
}

export interface StoredNode {
  l: CidLinkWrapper | null;
  e: StoredEntry[];
}

const MAP_2 = 0xa2;
const MAP_4 = 0xa4;
const STRING_1 = 0x61;
const [E, K, L, P, T, V] = ['e', 'k', 'l', 'p', 't', 'v'].map((key) => key.charCodeAt(0)) as [number, number, number, number, number, number];
const NULL = 0xf6;
const UINT = 0;
const BYTES = 2;
const ARRAY = 4;
/** Tag 42 (a CID), then a 37-byte string: 0x00 and the CID's 36 bytes. */
const CID_PREFIX = Uint8Array.of(0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01);
const CID_LENGTH = 36;
const DAG_CBOR = 0x71;
const RAW = 0x55;

/** The node's fields, or undefined when the bytes are not a node's plain canonical form. */
export function readStoredNode(bytes: Uint8Array): StoredNode | undefined {
  const reader = new Reader(bytes);
  if (!reader.expect(MAP_2, STRING_1, E)) return undefined;
  const count = reader.argument(ARRAY);
  if (count === undefined) return undefined;
  const e: StoredEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (!reader.expect(MAP_4, STRING_1, K)) return undefined;
    const k = reader.bytes();
    if (k === undefined || !reader.expect(STRING_1, P)) return undefined;
    const p = reader.argument(UINT);
    if (p === undefined || !reader.expect(STRING_1, T)) return undefined;
    const t = reader.nullableCid();
    if (t === undefined || !reader.expect(STRING_1, V)) return undefined;
    const v = reader.nullableCid();
    if (!v) return undefined;
    e.push({ p, k, v, t });
  }
  if (!reader.expect(STRING_1, L)) return undefined;
  const l = reader.nullableCid();
  if (l === undefined || !reader.atEnd()) return undefined;
  return { l, e };
}

class Reader {
  #at = 0;

  constructor(private readonly input: Uint8Array) {}

  atEnd(): boolean {
    return this.#at === this.input.length;
  }

  /** Whether the next bytes are these, consumed if so. */
  expect(...expected: number[]): boolean {
    for (const byte of expected) if (this.input[this.#at++] !== byte) return false;
    return true;
  }

  /** A major type's argument in its shortest form (up to 16 bits: a node's counts and lengths). */
  argument(major: number): number | undefined {
    const { input } = this;
    const first = input[this.#at++];
    if (first === undefined || first >> 5 !== major) return undefined;
    const info = first & 0x1f;
    if (info < 24) return info;
    if (info === 24) {
      const value = input[this.#at++];
      return value !== undefined && value >= 24 ? value : undefined;
    }
    if (info === 25 && this.#at + 2 <= input.length) {
      const value = (input[this.#at]! << 8) | input[this.#at + 1]!;
      this.#at += 2;
      return value >= 0x100 ? value : undefined;
    }
    return undefined;
  }

  bytes(): Uint8Array | undefined {
    const length = this.argument(BYTES);
    if (length === undefined || this.#at + length > this.input.length) return undefined;
    return this.input.subarray(this.#at, (this.#at += length));
  }

  /** null, a CID (a view into the input, as the generic decoder gives), or undefined if neither. */
  nullableCid(): CidLinkWrapper | null | undefined {
    const { input } = this;
    const at = this.#at;
    if (input[at] === NULL) {
      this.#at++;
      return null;
    }
    for (let i = 0; i < CID_PREFIX.length; i++) if (input[at + i] !== CID_PREFIX[i]) return undefined;
    const cid = at + CID_PREFIX.length - 1;
    const codec = input[cid + 1];
    if ((codec !== DAG_CBOR && codec !== RAW) || input[cid + 2] !== 0x12 || input[cid + 3] !== 0x20 || cid + CID_LENGTH > input.length) return undefined;
    this.#at = cid + CID_LENGTH;
    return new CidLinkWrapper(input.subarray(cid, cid + CID_LENGTH));
  }
}

/**
 * A node's canonical DAG-CBOR from its expanded form, each key prefix-compressed against the
 * one before. Keys are ASCII (assertMstKey holds every key that enters a node to it), so each
 * character is one byte.
 */
export function writeStoredNode(keys: readonly string[], values: readonly CidLinkWrapper[], subtrees: readonly (CidLinkWrapper | null)[]): Uint8Array {
  const prefixes = new Array<number>(keys.length);
  let size = 3 + argumentSize(keys.length) + 2 + cidSize(subtrees[0] ?? null);
  let previous = '';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    let prefix = 0;
    while (prefix < previous.length && prefix < key.length && previous.charCodeAt(prefix) === key.charCodeAt(prefix)) prefix++;
    prefixes[i] = prefix;
    const suffix = key.length - prefix;
    size += 3 + argumentSize(suffix) + suffix + 2 + argumentSize(prefix) + 2 + cidSize(subtrees[i + 1] ?? null) + 2 + cidSize(values[i]!);
    previous = key;
  }
  const writer = new Writer(size);
  writer.byte(MAP_2);
  writer.key(E);
  writer.argument(ARRAY, keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const prefix = prefixes[i]!;
    writer.byte(MAP_4);
    writer.key(K);
    writer.argument(BYTES, key.length - prefix);
    writer.ascii(key, prefix);
    writer.key(P);
    writer.argument(UINT, prefix);
    writer.key(T);
    writer.nullableCid(subtrees[i + 1] ?? null);
    writer.key(V);
    writer.nullableCid(values[i]!);
  }
  writer.key(L);
  writer.nullableCid(subtrees[0] ?? null);
  return writer.output;
}

function argumentSize(value: number): number {
  return value < 24 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : 5;
}

function cidSize(cid: CidLinkWrapper | null): number {
  if (cid === null) return 1;
  const length = cid.bytes.length + 1;
  return 2 + argumentSize(length) + length;
}

class Writer {
  readonly output: Buffer;
  #at = 0;

  constructor(size: number) {
    // From Node's pool: a built node's bytes are hashed, then dropped.
    this.output = Buffer.allocUnsafe(size);
  }

  byte(value: number): void {
    this.output[this.#at++] = value;
  }

  /** A one-character map key (all of a node's are). */
  key(char: number): void {
    this.output[this.#at++] = STRING_1;
    this.output[this.#at++] = char;
  }

  argument(major: number, value: number): void {
    const type = major << 5;
    if (value < 24) {
      this.byte(type | value);
    } else if (value < 0x100) {
      this.byte(type | 24);
      this.byte(value);
    } else if (value < 0x10000) {
      this.byte(type | 25);
      this.output.writeUInt16BE(value, this.#at);
      this.#at += 2;
    } else {
      this.byte(type | 26);
      this.output.writeUInt32BE(value, this.#at);
      this.#at += 4;
    }
  }

  ascii(text: string, from: number): void {
    for (let i = from; i < text.length; i++) this.output[this.#at++] = text.charCodeAt(i);
  }

  nullableCid(cid: CidLinkWrapper | null): void {
    if (cid === null) {
      this.byte(NULL);
      return;
    }
    this.byte(0xd8);
    this.byte(0x2a);
    this.argument(BYTES, cid.bytes.length + 1);
    this.byte(0x00);
    this.output.set(cid.bytes, this.#at);
    this.#at += cid.bytes.length;
  }
}
