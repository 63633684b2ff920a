import { hash } from 'node:crypto';
import { CidLinkWrapper } from '@atcute/cbor';
import type { CarSlice } from '../upstream/index.ts';
import { assertMstKey, decodeNode, encodeNode, isEmptyNode, joinNode, MalformedNodeError, nodeHeight, type KeyHeights, type MstNode } from './mst-node.ts';

/** A node the walk or a rewrite needs is not in the commit's CAR, or its bytes do not hash to its CID. */
export class MissingNodeError extends Error {
  constructor(readonly cid: CidLinkWrapper) {
    super(`MST node ${cid.$link} is not in the CAR (or does not match its CID)`);
  }
}

const EMPTY_NODE: MstNode = { keys: [], values: [], subtrees: [null], keyHeight: undefined };

/**
 * The part of a repo's MST that a commit's CAR carries, for the sync 1.1 inversion: find a key,
 * put or delete one, each returning the new root's CID. The same operations as @atcute/mst's
 * NodeWalker.findRpath and NodeWrangler.putRecord/deleteRecord, step for step — so they need
 * exactly the nodes the library would, and reach the same roots (test/verify.test.ts checks it
 * against the library on random trees) — but synchronous, and with key heights cached
 * (mst-node.ts): through the library, hashing every key of every node it decodes or builds was
 * half of a `full` check. A node is read from the CAR once, its bytes hashed against its CID;
 * nodes built here are kept by CID too, as the library's NodeStore keeps them.
 */
export class ProofTree {
  /** Nodes by their CID's bytes (as a latin1 string). */
  readonly #nodes = new Map<string, MstNode>();
  /** The same nodes by the CID objects that named them: a walk meets the same ones again. */
  readonly #byLink = new Map<CidLinkWrapper, MstNode>();

  constructor(
    private readonly car: CarSlice,
    private readonly heights: KeyHeights,
  ) {}

  /** The value the tree rooted at `root` holds at `key`, or null. */
  find(root: CidLinkWrapper, key: string): CidLinkWrapper | null {
    // Before its height is cached: an op's path is the relay's to choose (ops are not signed).
    assertMstKey(key);
    const keyHeight = this.heights.of(key);
    let node = this.#load(root);
    let height = nodeHeight(node);
    if (height === null) throw new MalformedNodeError('indeterminate node height');
    for (;;) {
      if (keyHeight > height) return null;
      const i = lowerBound(node.keys, key);
      if (node.keys[i] === key) return node.values[i]!;
      const subtree = node.subtrees[i];
      if (!subtree) return null;
      node = this.#load(subtree);
      const subtreeHeight = nodeHeight(node);
      if (subtreeHeight !== null && subtreeHeight !== height - 1) throw new MalformedNodeError(`inconsistent subtree height; got=${subtreeHeight} expected=${height - 1}`);
      height--;
    }
  }

  /** Puts `value` at `key`: the new root. */
  put(root: CidLinkWrapper, key: string, value: CidLinkWrapper): CidLinkWrapper {
    assertMstKey(key);
    const node = this.#load(root);
    if (isEmptyNode(node)) return this.#cid(this.#putHere(node, key, value, this.heights.of(key)));
    return this.#cid(this.#putBelow(node, key, value, this.heights.of(key), this.#requireHeight(node)));
  }

  /** Deletes `key`: the new root (the empty node's CID if nothing is left). */
  delete(root: CidLinkWrapper, key: string): CidLinkWrapper {
    assertMstKey(key);
    const node = this.#load(root);
    const remaining = this.#deleteBelow(node, key, this.heights.of(key), this.#requireHeight(node));
    return this.#cid(this.#load(this.#squashTop(remaining)));
  }

  #putBelow(node: MstNode, key: string, value: CidLinkWrapper, keyHeight: number, height: number): MstNode {
    if (keyHeight > height) return this.#putBelow(joinNode([], [], [this.#cid(node)]), key, value, keyHeight, height + 1);
    if (keyHeight < height) {
      const i = lowerBound(node.keys, key);
      const below = this.#putBelow(this.#load(node.subtrees[i] ?? null), key, value, keyHeight, height - 1);
      return joinNode(node.keys, node.values, replaceAt(node.subtrees, i, this.#cid(below)), node.keyHeight);
    }
    return this.#putHere(node, key, value, keyHeight);
  }

  #putHere(node: MstNode, key: string, value: CidLinkWrapper, keyHeight: number): MstNode {
    const i = lowerBound(node.keys, key);
    if (node.keys[i] === key) {
      if (sameCid(node.values[i]!, value)) return node;
      return joinNode(node.keys, replaceAt(node.values, i, value), node.subtrees, node.keyHeight);
    }
    const [left, right] = this.#split(node.subtrees[i] ?? null, key);
    return joinNode(splice(node.keys, i, 0, key), splice(node.values, i, 0, value), splice(node.subtrees, i, 1, left, right), node.keyHeight, keyHeight);
  }

  /** A subtree split around `key` into the parts before and after it. */
  #split(cid: CidLinkWrapper | null, key: string): [CidLinkWrapper | null, CidLinkWrapper | null] {
    if (cid === null) return [null, null];
    const node = this.#load(cid);
    const i = lowerBound(node.keys, key);
    const [left, right] = this.#split(node.subtrees[i] ?? null, key);
    const before = joinNode(node.keys.slice(0, i), node.values.slice(0, i), [...node.subtrees.slice(0, i), left], node.keyHeight);
    const after = joinNode(node.keys.slice(i), node.values.slice(i), [right, ...node.subtrees.slice(i + 1)], node.keyHeight);
    return [this.#nullable(before), this.#nullable(after)];
  }

  /** The subtree's CID with `key` deleted, null if it is left empty. */
  #deleteBelow(node: MstNode, key: string, keyHeight: number, height: number): CidLinkWrapper | null {
    if (keyHeight > height) return this.#nullable(node);
    const i = lowerBound(node.keys, key);
    if (keyHeight < height) {
      const subtree = node.subtrees[i];
      if (!subtree) return this.#nullable(node);
      const below = this.#deleteBelow(this.#load(subtree), key, keyHeight, height - 1);
      return this.#nullable(joinNode(node.keys, node.values, replaceAt(node.subtrees, i, below), node.keyHeight));
    }
    if (node.keys[i] !== key) return this.#nullable(node);
    const merged = this.#merge(node.subtrees[i] ?? null, node.subtrees[i + 1] ?? null);
    return this.#nullable(joinNode(splice(node.keys, i, 1), splice(node.values, i, 1), splice(node.subtrees, i, 2, merged), node.keyHeight));
  }

  /** Two adjacent subtrees as one, merged along their boundary. */
  #merge(left: CidLinkWrapper | null, right: CidLinkWrapper | null): CidLinkWrapper | null {
    if (left === null) return right;
    if (right === null) return left;
    const l = this.#load(left);
    const r = this.#load(right);
    const boundary = this.#merge(l.subtrees.at(-1) ?? null, r.subtrees[0] ?? null);
    return this.#nullable(joinNode([...l.keys, ...r.keys], [...l.values, ...r.values], [...l.subtrees.slice(0, -1), boundary, ...r.subtrees.slice(1)], l.keyHeight, r.keyHeight));
  }

  /** Strips nodes with no keys and one subtree off the top. */
  #squashTop(cid: CidLinkWrapper | null): CidLinkWrapper | null {
    const node = this.#load(cid);
    const [only] = node.subtrees;
    if (node.keys.length > 0 || !only) return cid;
    return this.#squashTop(only);
  }

  #requireHeight(node: MstNode): number {
    const height = nodeHeight(node);
    if (height === null) throw new MalformedNodeError('indeterminate node height');
    return height;
  }

  #nullable(node: MstNode): CidLinkWrapper | null {
    return isEmptyNode(node) ? null : this.#cid(node);
  }

  /** The node's CID; the node is kept under it, as a later step may load it. */
  #cid(node: MstNode): CidLinkWrapper {
    if (node.cid) return node.cid; // kept when it was loaded or built
    const digest = hash('sha256', encodeNode(node), 'binary');
    const bytes = new Uint8Array(36);
    bytes.set(DAG_CBOR_SHA256);
    for (let i = 0; i < 32; i++) bytes[4 + i] = digest.charCodeAt(i);
    const cid = new CidLinkWrapper(bytes);
    node.cid = cid;
    this.#nodes.set(DAG_CBOR_SHA256_KEY + digest, node);
    this.#byLink.set(cid, node);
    return cid;
  }

  /** A node built here or read from the CAR (hashed against its CID); null is the empty node. */
  #load(cid: CidLinkWrapper | null): MstNode {
    if (cid === null) return EMPTY_NODE;
    let node = this.#byLink.get(cid);
    if (node) return node;
    const key = cidKey(cid);
    node = this.#nodes.get(key);
    if (!node) {
      const bytes = this.car.find(cid.bytes);
      if (!bytes || !digestMatches(key, bytes)) throw new MissingNodeError(cid);
      node = decodeNode(bytes, this.heights);
      node.cid = cid;
      this.#nodes.set(key, node);
    }
    this.#byLink.set(cid, node);
    return node;
  }
}

/** A copy with `items` in place of `count` elements at `start` (Node 20 has toSpliced, its TypeScript lib not yet). */
function splice<T>(array: readonly T[], start: number, count: number, ...items: T[]): T[] {
  const copy = array.slice();
  copy.splice(start, count, ...items);
  return copy;
}

function replaceAt<T>(array: readonly T[], index: number, item: T): T[] {
  return splice(array, index, 1, item);
}

/** The first index whose key is not below `key` (keys are sorted; nodes hold few). */
function lowerBound(keys: readonly string[], key: string): number {
  let i = 0;
  while (i < keys.length && keys[i]! < key) i++;
  return i;
}

function cidKey(cid: CidLinkWrapper): string {
  return Buffer.from(cid.bytes.buffer, cid.bytes.byteOffset, cid.bytes.byteLength).toString('latin1');
}

/** The bytes a dag-cbor, sha2-256 CID starts with, and as a cidKey prefix. */
const DAG_CBOR_SHA256 = Uint8Array.of(0x01, 0x71, 0x12, 0x20);
const DAG_CBOR_SHA256_KEY = String.fromCharCode(...DAG_CBOR_SHA256);

function sameCid(a: CidLinkWrapper, b: CidLinkWrapper): boolean {
  return Buffer.from(a.bytes.buffer, a.bytes.byteOffset, a.bytes.byteLength).equals(b.bytes);
}

/** Whether a sha2-256 CID (its cidKey) has the block's hash as its digest (a CID of another hash function never matches). */
function digestMatches(cidKey: string, block: Uint8Array): boolean {
  if (cidKey.length !== 36 || cidKey.charCodeAt(2) !== 0x12 || cidKey.charCodeAt(3) !== 0x20) return false;
  return hash('sha256', block, 'binary') === cidKey.slice(4);
}
