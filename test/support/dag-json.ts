/**
 * DAG-JSON (as the atproto fixtures write it) → the values @ipld/dag-cbor encodes:
 * `{"$link": cid}` → CID, `{"$bytes": base64}` → Uint8Array, everything else as is. Only the
 * exact one-key forms are special; any other object keeps its `$link`/`$bytes` key as an
 * ordinary key, which contrail's writer then rejects as reserved. Numbers pass through, so a
 * non-integer becomes a CBOR float (which the writer rejects too).
 */
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';

export function fromDagJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromDagJson);
  if (typeof value !== 'object' || value === null) return value;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object);
  if (keys.length === 1 && typeof object.$link === 'string') return CID.parse(object.$link);
  if (keys.length === 1 && typeof object.$bytes === 'string') return bytesOf(object.$bytes);
  return Object.fromEntries(keys.map((key) => [key, fromDagJson(object[key])]));
}

/** The DAG-CBOR block for a DAG-JSON value. */
export function dagJsonToCbor(value: unknown): Uint8Array {
  return dagCbor.encode(fromDagJson(value));
}

function bytesOf(base64: string): Uint8Array {
  const bytes = Buffer.from(base64, 'base64');
  // Buffer skips characters it does not know; insist the text was exactly unpadded base64 of these bytes.
  if (bytes.toString('base64').replace(/=+$/, '') !== base64) throw new Error(`${JSON.stringify(base64.slice(0, 20))}… is not unpadded base64`);
  return new Uint8Array(bytes);
}

/**
 * The reverse, for checking contrail's output independently: CID → {$link}, bytes → {$bytes}.
 * `bigint` says what to make of integers past 2^53 (kept as bigint unless told).
 */
export function toDagJson(value: unknown, bigint: (n: bigint) => unknown = (n) => n): unknown {
  if (typeof value === 'bigint') return bigint(value);
  if (Array.isArray(value)) return value.map((item) => toDagJson(item, bigint));
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64').replace(/=+$/, '') };
  const cid = CID.asCID(value);
  if (cid) return { $link: cid.toString() };
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toDagJson(item, bigint)]));
}
