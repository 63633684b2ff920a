import { hash } from 'node:crypto';
import { CidLinkWrapper, decode, fromBytes, isBytes } from '@atcute/cbor';
import { readStoredNode, writeStoredNode, type StoredNode } from './node-cbor.ts';

/**
 * An MST node (https://atproto.com/specs/repository#mst-structure) with its keys expanded: the
 * form @atcute/mst's MSTNode has, decoded, checked and encoded the same way, but synchronously
 * and with each key's height looked up in a shared cache instead of hashed again for every
 * node that holds it (see proof-tree.ts for why).
 */
export interface MstNode {
  readonly keys: readonly string[];
  readonly values: readonly CidLinkWrapper[];
  /** keys.length + 1 subtrees: left of the first key, then right of each. */
  readonly subtrees: readonly (CidLinkWrapper | null)[];
  /** The height of its keys (which agree), undefined if it has none. */
  readonly keyHeight: number | undefined;
  /** Its CID, once computed (or as loaded). */
  cid?: CidLinkWrapper;
}

/** Thrown for a node that breaks the MST's rules; the message says which. */
export class MalformedNodeError extends Error {}

const MST_KEY = /^[a-zA-Z0-9_~.:-]+\/[a-zA-Z0-9_~.:-]+$/;

/** What one remembered key is taken to cost beyond its characters: the string's header and the map's entry. */
const KEY_ENTRY_BYTES = 64;

/**
 * Keys' MST heights (leading zero bit pairs of their SHA-256), remembered: a repo's keys come
 * back in node after node and commit after commit. Bounded by the bytes its keys take, not their
 * count (a key may be 1,024 characters): cleared when full, each key then hashed again once.
 */
export class KeyHeights {
  readonly #heights = new Map<string, number>();
  #bytes = 0;

  constructor(private readonly maxBytes = 8 * 1024 * 1024) {}

  of(key: string): number {
    let height = this.#heights.get(key);
    if (height === undefined) {
      height = leadingZeroPairs(hash('sha256', key, 'binary'));
      const bytes = key.length + KEY_ENTRY_BYTES;
      if (this.#bytes + bytes > this.maxBytes) {
        this.#heights.clear();
        this.#bytes = 0;
      }
      this.#heights.set(key, height);
      this.#bytes += bytes;
    }
    return height;
  }
}

/** The node's height: its keys', 0 for the empty node, null if indeterminate (no keys, a subtree). */
export function nodeHeight(node: MstNode): number | null {
  if (node.keyHeight !== undefined) return node.keyHeight;
  return node.subtrees[0] === null ? 0 : null;
}

/** Of a digest as a 'binary' (latin1) string: one character a byte. */
function leadingZeroPairs(digest: string): number {
  let zeros = 0;
  for (let i = 0; i < digest.length; i++) {
    const byte = digest.charCodeAt(i);
    if (byte < 64) zeros++;
    if (byte < 16) zeros++;
    if (byte < 4) zeros++;
    if (byte !== 0) break;
    zeros++;
  }
  return zeros;
}

/** A repo path (`collection/rkey`) as the MST allows it, or MalformedNodeError (as @atcute/mst's assertMstKey). */
export function assertMstKey(key: string): void {
  if (key.length < 3 || key.length > 1024 || !MST_KEY.test(key)) {
    throw new MalformedNodeError(`invalid MST key: ${JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}…` : key)} (${key.length} characters)`);
  }
}

export function isEmptyNode(node: MstNode): boolean {
  return node.subtrees.length === 1 && node.subtrees[0] === null;
}

/** A node from its parts, checked as @atcute/mst's MSTNode.create checks them. */
export function makeNode(keys: readonly string[], values: readonly CidLinkWrapper[], subtrees: readonly (CidLinkWrapper | null)[], heights: KeyHeights): MstNode {
  return joinNode(keys, values, subtrees, ...keys.map((key) => heights.of(key)));
}

/**
 * A node from its parts, its keys being runs taken from checked nodes (or single keys), in
 * order, each run's height given (undefined for a run of none): the same check as makeNode's
 * — all keys of one height — without hashing or looking up each key again.
 */
export function joinNode(keys: readonly string[], values: readonly CidLinkWrapper[], subtrees: readonly (CidLinkWrapper | null)[], ...runHeights: (number | undefined)[]): MstNode {
  if (subtrees.length !== keys.length + 1) throw new MalformedNodeError('malformed MST node; invalid subtree count');
  if (keys.length !== values.length) throw new MalformedNodeError('malformed MST node; mismatched keys/values lengths');
  let keyHeight: number | undefined;
  for (const height of runHeights) {
    if (height === undefined) continue;
    if (keyHeight !== undefined && height !== keyHeight) throw new MalformedNodeError('malformed MST node; inconsistent key heights');
    keyHeight = height;
  }
  return { keys, values, subtrees, keyHeight: keys.length > 0 ? keyHeight : undefined };
}

/** Decodes a node's DAG-CBOR (`{l, e: [{p, k, v, t}]}`, keys prefix-compressed) and checks it. */
export function decodeNode(bytes: Uint8Array, heights: KeyHeights): MstNode {
  const data = readStoredNode(bytes) ?? decodeGeneric(bytes);
  const keys: string[] = [];
  const values: CidLinkWrapper[] = [];
  const subtrees: (CidLinkWrapper | null)[] = [data.l];
  let previous = '';
  for (const entry of data.e) {
    const prefix = entry.p;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > previous.length) throw new MalformedNodeError('malformed MST node; unexpected key prefix length');
    const suffix = entry.k;
    if ((prefix < previous.length ? previous.charCodeAt(prefix) : undefined) === suffix[0]) throw new MalformedNodeError('malformed MST node; suboptimal key prefix length');
    const key = joinKey(previous, prefix, suffix);
    if (key <= previous) throw new MalformedNodeError('malformed MST node; invalid key sort order');
    assertMstKey(key);
    keys.push(key);
    values.push(entry.v);
    subtrees.push(entry.t);
    previous = key;
  }
  return makeNode(keys, values, subtrees, heights);
}

/** The previous key's bytes, then the one being read: a node's keys are read one after another. */
let keyBytes = Buffer.allocUnsafe(1024);

/**
 * `previous`'s first `prefix` characters then `suffix`, as one flat string: keys are compared
 * and written character by character, which a joined string does slowly. Keys are ASCII
 * (assertMstKey), so each byte is a character; a suffix that is not is read as UTF-8, as
 * @atcute/mst reads it, and the key is then refused.
 */
function joinKey(previous: string, prefix: number, suffix: Uint8Array): string {
  for (const byte of suffix) if (byte > 0x7f) return previous.slice(0, prefix) + Buffer.from(suffix.buffer, suffix.byteOffset, suffix.byteLength).toString('utf8');
  const length = prefix + suffix.length;
  if (keyBytes.length < length) {
    const longer = Buffer.allocUnsafe(length);
    longer.set(keyBytes.subarray(0, prefix));
    keyBytes = longer;
  }
  keyBytes.set(suffix, prefix);
  return keyBytes.toString('latin1', 0, length);
}

/** A node through the generic DAG-CBOR decoder: what node-cbor.ts does not read (legal or not). */
function decodeGeneric(bytes: Uint8Array): StoredNode {
  const data: unknown = decode(bytes);
  if (!isNodeData(data)) throw new MalformedNodeError('malformed MST node; invalid structure');
  return { l: data.l, e: data.e.map(({ p, k, v, t }) => ({ p, k: fromBytes(k), v, t })) };
}

/** The node's DAG-CBOR, keys prefix-compressed against the previous one. */
export function encodeNode(node: MstNode): Uint8Array {
  return writeStoredNode(node.keys, node.values, node.subtrees);
}

interface NodeData {
  l: CidLinkWrapper | null;
  e: { p: number; k: Parameters<typeof fromBytes>[0]; v: CidLinkWrapper; t: CidLinkWrapper | null }[];
}

function isNodeData(value: unknown): value is NodeData {
  if (value === null || typeof value !== 'object') return false;
  const { l, e } = value as Record<string, unknown>;
  return (l === null || l instanceof CidLinkWrapper) && Array.isArray(e) && e.every(isTreeEntry);
}

function isTreeEntry(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const { p, k, v, t } = value as Record<string, unknown>;
  return typeof p === 'number' && isBytes(k) && v instanceof CidLinkWrapper && (t === null || t instanceof CidLinkWrapper);
}
