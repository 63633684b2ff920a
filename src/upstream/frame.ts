import { decodeOptions } from '@ipld/dag-cbor';
import { ViewDecoder, decodeLinkTag, readDagCbor } from '../atproto/index.ts';
import { DropError } from './drop.ts';

/**
 * DAG-CBOR's strict rules, with links kept as bytes (see atproto/link.ts) and byte strings as
 * views: what readDagCbor gives for the items it reads, and what decides every other.
 */
const frameDecoder = new ViewDecoder({ ...decodeOptions, tags: { ...decodeOptions.tags, 42: decodeLinkTag } });

/**
 * One subscribeRepos WebSocket message: a DAG-CBOR header `{op, t}` followed by a DAG-CBOR body.
 * `op = 1` carries a message of type `t`; `op = -1` is an error frame whose body is `{error, message}`.
 */
export type Frame =
  | { op: 1; type: string; body: Record<string, unknown> }
  | { op: -1; body: { error: string; message?: string } };

export function decodeFrame(bytes: Uint8Array, maxBytes: number): Frame {
  if (bytes.byteLength > maxBytes) {
    throw new DropError('oversized', `frame of ${bytes.byteLength} bytes exceeds the ${maxBytes}-byte limit`);
  }
  const [header, rest] = decodeFirst(bytes);
  if (!isMap(header) || (header.op !== 1 && header.op !== -1)) {
    throw new DropError('bad_header', 'header is not a map with op 1 or -1');
  }
  if (rest.byteLength === 0) throw new DropError('truncated', 'frame has a header but no body');
  const body = decodeOne(rest);
  if (!isMap(body)) throw new DropError('body_not_map', 'body is not a map');
  if (header.op === -1) {
    const error = typeof body.error === 'string' ? body.error : 'Unknown';
    const message = typeof body.message === 'string' ? body.message : undefined;
    return { op: -1, body: { error, message } };
  }
  if (typeof header.t !== 'string') throw new DropError('bad_header', 'header op 1 without a string t');
  return { op: 1, type: header.t, body };
}

/** One DAG-CBOR block (a CAR header, a commit) with the frame's rules; a DropError when it is not one. */
export function decodeDagCbor(bytes: Uint8Array): unknown {
  return decodeOne(bytes);
}

/** The first item and the bytes after it: read by readDagCbor when it can, else by the strict decoder. */
function decodeFirst(bytes: Uint8Array): [unknown, Uint8Array] {
  const read = readDagCbor(bytes, 0);
  return read ? [read.value, bytes.subarray(read.end)] : decodeCbor(() => frameDecoder.decodeFirst(bytes));
}

/** The one item `bytes` hold (nothing may follow it). */
function decodeOne(bytes: Uint8Array): unknown {
  const read = readDagCbor(bytes, 0);
  return read && read.end === bytes.length ? read.value : decodeCbor(() => frameDecoder.decode(bytes));
}

function decodeCbor<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    const message = (err as Error).message;
    // cborg's words when the input stops early: mid-item ("not enough data"), between a map's
    // or array's entries ("not enough entries"), after a tag ("tag content missing"), or before
    // anything at all ("did not find any content"); and "too many terminals" when bytes remain.
    if (/not enough (data|entries)|content missing|did not find any content/.test(message)) throw new DropError('truncated', message);
    if (/too many terminals/.test(message)) throw new DropError('trailing_bytes', message);
    throw new DropError('malformed_cbor', message);
  }
}

/** A decoded CBOR map: cborg makes those plain objects, while links and bytes are class instances. */
export function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}
