import { decode } from 'cborg';
import { decodeOptions } from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';

/** A CID link as the atproto JSON data model writes it: `{"$link": "bafy…"}`. */
class Link {
  constructor(readonly text: string) {}
}

const recordDecodeOptions = {
  ...decodeOptions,
  tags: {
    ...decodeOptions.tags,
    // Keep links as their final string form: the CID object is never needed here.
    42: (decodeTagged: () => unknown) => {
      const bytes = decodeTagged() as Uint8Array;
      if (!(bytes instanceof Uint8Array) || bytes[0] !== 0) throw new Error('invalid CID in tag 42');
      return new Link(CID.decode(bytes.subarray(1)).toString());
    },
  },
};

const DOLLAR = 0x24;
const HTML_SENSITIVE = /[<>&\u2028\u2029]/;
const HTML_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * DAG-CBOR record block → atproto JSON text, byte-for-byte as Jetstream v1 writes it (Go's
 * encoding/json over indigo's data model): object keys sorted, blobs as `$type, ref, mimeType,
 * size`, links as `{"$link"}`, bytes as `{"$bytes"}` (base64, no padding), and `<`, `>`, `&`,
 * U+2028/9 escaped as \u sequences. Throws on what the atproto data model forbids — floats,
 * a missing `$type`, malformed blobs, `$link`/`$bytes` as ordinary keys — so such a record is
 * dropped rather than served in a form clients would misread.
 */
export function recordToJson(block: Uint8Array): string {
  const record = decode(block, recordDecodeOptions) as unknown;
  if (!isPlainObject(record)) throw new Error('record is not a map');
  if (typeof record.$type !== 'string' || record.$type.length === 0) throw new Error('record $type is not a non-empty string');
  return writeValue(record);
}

/** Any DAG-CBOR value → atproto JSON text, with the same rules as recordToJson but no record checks. */
export function dataModelToJson(block: Uint8Array): string {
  return writeValue(decode(block, recordDecodeOptions));
}

function writeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return writeString(value);
    case 'number':
      if (!Number.isInteger(value)) throw new Error(`float ${value} is not allowed in the atproto data model`);
      return String(value);
    case 'boolean':
      return String(value);
    case 'bigint':
      return value.toString();
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return writeArray(value);
      if (value instanceof Link) return `{"$link":"${value.text}"}`;
      if (value instanceof Uint8Array) return `{"$bytes":"${Buffer.from(value).toString('base64').replace(/=+$/, '')}"}`;
      return writeObject(value as Record<string, unknown>);
    default:
      throw new Error(`unexpected ${typeof value} in a record`);
  }
}

function writeString(value: string): string {
  const json = JSON.stringify(value);
  return HTML_SENSITIVE.test(json) ? json.replace(/[<>&\u2028\u2029]/g, (c) => HTML_ESCAPES[c]) : json;
}

function writeArray(items: unknown[]): string {
  let out = '[';
  for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + writeValue(items[i]);
  return out + ']';
}

function writeObject(object: Record<string, unknown>): string {
  if (object.$type === 'blob') return writeBlob(object);
  const keys = Object.keys(object).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key.charCodeAt(0) === DOLLAR && (key === '$link' || key === '$bytes')) {
      throw new Error(`${key} is reserved in the atproto data model`);
    }
    out += (i === 0 ? '' : ',') + writeString(key) + ':' + writeValue(object[key]);
  }
  return out + '}';
}

function writeBlob(blob: Record<string, unknown>): string {
  const { ref, mimeType, size } = blob;
  if (!(ref instanceof Link) || typeof mimeType !== 'string' || !Number.isSafeInteger(size) || Object.keys(blob).length !== 4) {
    throw new Error('blob is not {$type, ref: link, mimeType: string, size: integer}');
  }
  return `{"$type":"blob","ref":{"$link":"${ref.text}"},"mimeType":${writeString(mimeType)},"size":${size}}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array) && !(value instanceof Link);
}
