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

/**
 * DAG-CBOR record block → atproto JSON text, as Jetstream v1 writes it: object keys in sorted
 * order (Go's encoding/json sorts map keys), blobs as `$type, ref, mimeType, size`, links as
 * `{"$link"}` and bytes as `{"$bytes"}` (base64, no padding).
 */
export function recordToJson(block: Uint8Array): string {
  return writeValue(decode(block, recordDecodeOptions));
}

function writeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
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

function writeArray(items: unknown[]): string {
  let out = '[';
  for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + writeValue(items[i]);
  return out + ']';
}

function writeObject(object: Record<string, unknown>): string {
  if (isBlob(object)) return writeBlob(object);
  const keys = Object.keys(object).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    out += (i === 0 ? '' : ',') + JSON.stringify(key) + ':' + writeValue(object[key]);
  }
  return out + '}';
}

function isBlob(object: Record<string, unknown>): boolean {
  return object.$type === 'blob' && object.ref instanceof Link && typeof object.mimeType === 'string' && typeof object.size === 'number';
}

function writeBlob(blob: Record<string, unknown>): string {
  return `{"$type":"blob","ref":${writeValue(blob.ref)},"mimeType":${writeValue(blob.mimeType)},"size":${writeValue(blob.size)}}`;
}
