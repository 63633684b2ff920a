import { hash } from 'node:crypto';
import { CidLinkWrapper, decode, encode, fromBytes, isBytes, toBytes } from '@atcute/cbor';

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
  /** Its CID, once computed (or as loaded). */
  cid?: CidLinkWrapper;
}

/** Thrown for a node that breaks the MST's rules; the message says which. */
export class MalformedNodeError extends Error {}

const MST_KEY = /^[a-zA-Z0-9_~.:-]+\/[a-zA-Z0-9_~.:-]+$/;
const DAG_CBOR_SHA256 = Uint8Array.of(0x01, 0x71, 0x12, 0x20);

/**
 * Keys' MST heights (leading zero bit pairs of their SHA-256), remembered: a repo's keys come
 * back in node after node and commit after commit. Bounded: cleared when full.
 */
export class KeyHeights {
  readonly #heights = new Map<string, number>();

  constructor(private readonly maxKeys = 100_000) {}

  of(key: string): number {
    let height = this.#heights.get(key);
    if (height === undefined) {
      height = leadingZeroPairs(hash('sha256', key, 'buffer') as unknown as Uint8Array);
      if (this.#heights.size >= this.maxKeys) this.#heights.clear();
      this.#heights.set(key, height);
    }
    return height;
  }

  /** The node's height: its keys' (which must agree), 0 for the empty node, null if indeterminate (no keys, a subtree). */
  ofNode(node: Pick<MstNode, 'keys' | 'subtrees'>): number | null {
    const [first] = node.keys;
    if (first !== undefined) return this.of(first);
    return node.subtrees[0] === null ? 0 : null;
  }
}

function leadingZeroPairs(digest: Uint8Array): number {
  let zeros = 0;
  for (const byte of digest) {
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
  if (key.length < 3 || key.length > 1024 || !MST_KEY.test(key)) throw new MalformedNodeError(`invalid MST key: ${JSON.stringify(key)}`);
}

export function isEmptyNode(node: MstNode): boolean {
  return node.subtrees.length === 1 && node.subtrees[0] === null;
}

/** A node from its parts, checked as @atcute/mst's MSTNode.create checks them. */
export function makeNode(keys: readonly string[], values: readonly CidLinkWrapper[], subtrees: readonly (CidLinkWrapper | null)[], heights: KeyHeights): MstNode {
  if (subtrees.length !== keys.length + 1) throw new MalformedNodeError('malformed MST node; invalid subtree count');
  if (keys.length !== values.length) throw new MalformedNodeError('malformed MST node; mismatched keys/values lengths');
  const [first] = keys;
  if (first !== undefined) {
    const height = heights.of(first);
    for (const key of keys) if (heights.of(key) !== height) throw new MalformedNodeError('malformed MST node; inconsistent key heights');
  }
  return { keys, values, subtrees };
}

/** Decodes a node's DAG-CBOR (`{l, e: [{p, k, v, t}]}`, keys prefix-compressed) and checks it. */
export function decodeNode(bytes: Uint8Array, heights: KeyHeights): MstNode {
  const data: unknown = decode(bytes);
  if (!isNodeData(data)) throw new MalformedNodeError('malformed MST node; invalid structure');
  const keys: string[] = [];
  const values: CidLinkWrapper[] = [];
  const subtrees: (CidLinkWrapper | null)[] = [data.l];
  let previous = '';
  for (const entry of data.e) {
    const prefix = entry.p;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > previous.length) throw new MalformedNodeError('malformed MST node; unexpected key prefix length');
    const suffix = Buffer.from(fromBytes(entry.k)).toString('utf8');
    if (previous[prefix] === suffix[0]) throw new MalformedNodeError('malformed MST node; suboptimal key prefix length');
    const key = previous.slice(0, prefix) + suffix;
    if (key <= previous) throw new MalformedNodeError('malformed MST node; invalid key sort order');
    assertMstKey(key);
    keys.push(key);
    values.push(entry.v);
    subtrees.push(entry.t);
    previous = key;
  }
  return makeNode(keys, values, subtrees, heights);
}

/** The node's DAG-CBOR, keys prefix-compressed against the previous one. */
export function encodeNode(node: MstNode): Uint8Array {
  const e = [];
  let previous = '';
  for (let i = 0; i < node.keys.length; i++) {
    const key = node.keys[i]!;
    let prefix = 0;
    while (prefix < previous.length && prefix < key.length && previous[prefix] === key[prefix]) prefix++;
    e.push({ k: toBytes(Buffer.from(key.slice(prefix), 'utf8')), p: prefix, t: node.subtrees[i + 1] ?? null, v: node.values[i]! });
    previous = key;
  }
  return encode({ l: node.subtrees[0] ?? null, e });
}

/** The node's CID (CIDv1, dag-cbor, sha2-256), computed once. */
export function nodeCid(node: MstNode): CidLinkWrapper {
  if (!node.cid) {
    const bytes = new Uint8Array(36);
    bytes.set(DAG_CBOR_SHA256);
    bytes.set(hash('sha256', encodeNode(node), 'buffer') as unknown as Uint8Array, 4);
    node.cid = new CidLinkWrapper(bytes);
  }
  return node.cid;
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
