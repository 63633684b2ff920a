import { Type, type Token } from 'cborg';
import { decodeOptions } from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { base32 } from 'multiformats/bases/base32';
import { ViewTokenizer } from '../atproto/index.ts';

/**
 * DAG-CBOR record block → atproto JSON text, byte-for-byte as Jetstream v1 writes it (Go's
 * encoding/json over indigo's data model): object keys sorted, blobs as `$type, ref, mimeType,
 * size`, links as `{"$link"}`, bytes as `{"$bytes"}` (base64, no padding), and `<`, `>`, `&`,
 * U+2028/9 escaped as \u sequences. Throws on what the atproto data model forbids — floats,
 * a missing `$type`, malformed blobs, `$link`/`$bytes` as ordinary keys, duplicate keys — so
 * such a record is dropped rather than served in a form clients would misread.
 *
 * Why a transcoder: it walks cborg's tokens (with DAG-CBOR's strict decode options) and writes
 * JSON as it goes, never building the record as JS objects — half the cost of decode-then-
 * serialize. Ingest runs record-bytes.ts, which reads the bytes directly (faster again) and
 * hands this one every shape it does not read itself and every record it would refuse, so this
 * is where the rules are decided; backfill calls this one.
 */
export function recordToJson(block: Uint8Array): string {
  return transcode(block, true);
}

/** Any DAG-CBOR value → atproto JSON text, with the same rules but no record checks. */
export function dataModelToJson(block: Uint8Array): string {
  return transcode(block, false);
}

const TAG_CID = 42;
const HTML_SENSITIVE = /[<>&\u2028\u2029]/;
const HTML_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/** Reused for every record: transcoding is synchronous and never re-entered. */
const recordTokens = new ViewTokenizer(new Uint8Array(0), decodeOptions);

function transcode(block: Uint8Array, isRecord: boolean): string {
  const tokens = recordTokens.reset(block);
  const first = tokens.next();
  if (isRecord && first.type !== Type.map) throw new Error('record is not a map');
  const json = writeValue(first, tokens, isRecord);
  if (!tokens.done()) throw new Error('trailing bytes after the record');
  return json;
}

function writeValue(token: Token, tokens: ViewTokenizer, isRecord = false): string {
  switch (token.type) {
    case Type.string:
      return writeString(token.value);
    case Type.uint:
    case Type.negint:
      return String(token.value);
    case Type.map:
      return writeMap(token.value, tokens, isRecord);
    case Type.array: {
      let out = '[';
      for (let i = 0; i < token.value; i++) out += (i === 0 ? '' : ',') + writeValue(tokens.next(), tokens);
      return out + ']';
    }
    case Type.true:
      return 'true';
    case Type.false:
      return 'false';
    case Type.null:
      return 'null';
    case Type.bytes:
      return `{"$bytes":"${Buffer.from(token.value).toString('base64').replace(/=+$/, '')}"}`;
    case Type.tag:
      if (token.value !== TAG_CID) throw new Error(`CBOR tag ${token.value} is not allowed (only 42, links)`);
      return `{"$link":"${linkText(tokens.next())}"}`;
    case Type.float:
      if (!Number.isInteger(token.value)) throw new Error(`float ${token.value} is not allowed in the atproto data model`);
      return String(token.value);
    default:
      throw new Error(`CBOR ${token.type.name} is not allowed in the atproto data model`);
  }
}

/** A map's entries, keys sorted (and checked unique); blobs keep their fixed order. */
function writeMap(size: number, tokens: ViewTokenizer, isRecord: boolean): string {
  const entries: Array<[key: string, json: string]> = new Array(size);
  let type: string | undefined;
  for (let i = 0; i < size; i++) {
    const keyToken = tokens.next();
    if (keyToken.type !== Type.string) throw new Error('map keys must be strings');
    const key: string = keyToken.value;
    if (key.charCodeAt(0) === DOLLAR) {
      if (key === '$link' || key === '$bytes') throw new Error(`${key} is reserved in the atproto data model`);
    }
    const json = writeValue(tokens.next(), tokens);
    if (key === '$type') type = json;
    entries[i] = [key, json];
  }
  if ((isRecord || type !== undefined) && (type === undefined || type.length <= 2 || type[0] !== '"')) {
    throw new Error('$type is not a non-empty string');
  }
  sortLikeGo(entries);
  let previousKey: string | undefined;
  for (const entry of entries) {
    if (entry[0] === previousKey) throw new Error(`duplicate map key ${JSON.stringify(previousKey)}`);
    previousKey = entry[0];
  }
  if (type === '"blob"') return writeBlob(entries);
  let out = '{';
  let separator = '"';
  for (const entry of entries) {
    out += separator + escapeKey(entry[0]) + '":' + entry[1];
    separator = ',"';
  }
  return out + '}';
}

const DOLLAR = 0x24;

/** `entries` are sorted: $type, mimeType, ref, size. */
function writeBlob(entries: Array<[string, string]>): string {
  const [, [mimeTypeKey, mimeType] = ['', ''], [refKey, ref] = ['', ''], [sizeKey, size] = ['', '']] = entries;
  if (entries.length !== 4 || mimeTypeKey !== 'mimeType' || refKey !== 'ref' || sizeKey !== 'size' || !ref.startsWith('{"$link":') || mimeType[0] !== '"' || !/^\d+$/.test(size)) {
    throw new Error('blob is not {$type, ref: link, mimeType: string, size: integer}');
  }
  return `{"$type":"blob","ref":${ref},"mimeType":${mimeType},"size":${size}}`;
}

/** The string form of a tag-42 link: a 0x00 prefix, then the binary CID. */
function linkText(token: Token): string {
  const bytes = token.value as Uint8Array;
  if (token.type !== Type.bytes || bytes[0] !== 0) throw new Error('tag 42 does not hold a 0x00-prefixed CID');
  // CIDv1 (all atproto links) are base32 multibase; decoding first validates the structure.
  const cid = CID.decode(bytes.subarray(1));
  return cid.version === 1 ? base32.encode(cid.bytes) : cid.toString();
}

/** Go sorts map keys by their UTF-8 bytes; UTF-16 order differs only past U+D7FF. */
function sortLikeGo(entries: Array<[string, string]>): void {
  entries.sort(byKey);
  if (entries.some(([key]) => BEYOND_BMP_START.test(key))) entries.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
}

function byKey(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

const BEYOND_BMP_START = /[\ud800-\uffff]/;

/** JSON.stringify, then Go's differences: HTML-sensitive characters, and \b \f as \u sequences. */
export function writeString(value: string): string {
  let json = JSON.stringify(value);
  if (!GO_ESCAPES_DIFFER.test(value)) return json;
  if (HTML_SENSITIVE.test(json)) json = json.replace(/[<>&\u2028\u2029]/g, (c) => HTML_ESCAPES[c] ?? c);
  if (SHORT_ESCAPED_BY_JS.test(value)) {
    // An escape is a backslash preceded by an even number of backslashes.
    json = json.replace(/(\\*)\\([bf])/g, (match, slashes: string, c: string) =>
      slashes.length % 2 === 1 ? match : slashes + (c === 'b' ? '\\u0008' : '\\u000c'),
    );
  }
  return json;
}

const SHORT_ESCAPED_BY_JS = /[\b\f]/;
const GO_ESCAPES_DIFFER = /[<>&\u2028\u2029\b\f]/;
/** Keys that JSON writes as they are (nearly all lexicon field names). */
const PLAIN_KEY = /^[\w$#.:-]*$/;

function escapeKey(key: string): string {
  return PLAIN_KEY.test(key) ? key : writeString(key).slice(1, -1);
}
