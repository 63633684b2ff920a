import { createHash } from 'node:crypto';
import { CarBlockIterator } from '@ipld/car/iterator';
import { decode as decodeDagCbor, encode as encodeDagCbor } from '@ipld/dag-cbor';
import { MissingBlockError, MSTNode, NodeStore, NodeWalker, type ReadonlyBlockStore } from '@atcute/mst';
import type { BlockMap } from '@atcute/mst';
import { CID } from 'multiformats/cid';
import { recordToJson } from '../events/index.ts';
import { base32Multibase, isDid, isTid } from '../atproto/index.ts';
import { BackfillFailure } from './failure.ts';

/** One record of a repo snapshot, its JSON written once as live events write theirs. */
export interface RepoRecord {
  collection: string;
  rkey: string;
  cid: string;
  json: string;
}

/** A repo's records at one signed commit. */
export interface RepoSnapshot {
  did: string;
  rev: string;
  commitCid: string;
  records: RepoRecord[];
  /** Records left out because they break the atproto data model (as ingest drops them). */
  skipped: number;
  /** Roughly what the snapshot holds in memory, for the cache's byte bound. */
  bytes: number;
}

/** The repo's signed commit object (atproto repo v3). */
export interface SignedCommit {
  did: string;
  version: 3;
  data: CID;
  rev: string;
  prev: CID | null;
  sig: Uint8Array;
  /** The DAG-CBOR bytes the signature covers: the commit without `sig`. */
  unsigned: Uint8Array;
}

/** Checks the commit's signature (--verify); throws BackfillFailure('bad_signature') if it fails. */
export type CommitCheck = (commit: SignedCommit) => Promise<void>;

const SHA2_256 = 0x12;
const DAG_CBOR = 0x71;

/**
 * Reads a `com.atproto.sync.getRepo` CAR from a stream of chunks and returns every record the
 * signed commit's MST reaches. Each block's bytes are hashed against its CID as it arrives, so
 * everything later trusted (the commit, MST nodes, records) is what the CIDs name; the walk then
 * only follows CIDs, so nothing a CAR adds beside the tree can reach the snapshot.
 *
 * Why blocks are kept until the end: a getRepo CAR need not be in tree order (the PDS pages
 * its blocks out of SQLite), so a record may arrive before the node that names it. What is held
 * is bounded by `maxBytes`: each block counts its CID and bytes plus BLOCK_OVERHEAD_BYTES (its
 * key, map entry and view cost that much beside the CAR's bytes, so a CAR of many tiny blocks
 * cannot hold many times the limit).
 */
export async function readRepoCar(chunks: AsyncIterable<Uint8Array>, did: string, maxBytes: number, checkCommit?: CommitCheck): Promise<RepoSnapshot> {
  const { root, blocks } = await readVerifiedBlocks(chunks, maxBytes);
  const commitCid = root.toString();
  const commit = parseCommit(blocks.get(commitCid), commitCid, did);
  await checkCommit?.(commit);
  const { records, skipped, bytes } = await walkRecords(blocks, commit.data.toString());
  return { did, rev: commit.rev, commitCid, records, skipped, bytes };
}

/**
 * What holding one block costs beside its CID and bytes, counted against the byte limit: its
 * key string, map entry and Uint8Array view, measured at ~185 bytes on Node 20 and rounded up.
 */
export const BLOCK_OVERHEAD_BYTES = 256;

async function readVerifiedBlocks(chunks: AsyncIterable<Uint8Array>, maxBytes: number): Promise<{ root: CID; blocks: BlockMap }> {
  const blocks: BlockMap = new Map();
  const roots = await forEachVerifiedBlock(
    chunks,
    maxBytes,
    (key, bytes) => blocks.set(key, bytes),
    (named) => {
      if (named.length !== 1) throw new BackfillFailure('bad_car', `the CAR names ${named.length} roots; a repo export names one, its commit`);
    },
  );
  return { root: roots[0]!, blocks };
}

/**
 * Reads a `com.atproto.sync.getBlocks` CAR (which names no root) for the one block `cid`, the
 * repo's signed commit, each block hashed against its CID as readRepoCar does (the same limit and
 * failures), and checks it: what a --verify resync keeps is the commit's rev and MST root.
 */
export async function readCommitBlock(chunks: AsyncIterable<Uint8Array>, cid: CID, did: string, maxBytes: number, checkCommit: CommitCheck): Promise<SignedCommit> {
  const wanted = base32Multibase(cid.bytes);
  let commitBlock: Uint8Array | undefined;
  await forEachVerifiedBlock(chunks, maxBytes, (key, bytes) => {
    if (key === wanted) commitBlock = bytes;
  });
  const commit = parseCommit(commitBlock, cid.toString(), did);
  await checkCommit(commit);
  return commit;
}

/**
 * Reads a getRepo CAR through for its root, the repo's signed commit, and checks it as
 * readCommitBlock does: every block is hashed against its CID and counts against `maxBytes` as
 * readRepoCar counts it, but only the commit is kept (a resync needs nothing else).
 */
export async function readRepoCommit(chunks: AsyncIterable<Uint8Array>, did: string, maxBytes: number, checkCommit: CommitCheck): Promise<SignedCommit> {
  let root: string | undefined;
  let commitBlock: Uint8Array | undefined;
  const roots = await forEachVerifiedBlock(
    chunks,
    maxBytes,
    (key, bytes) => {
      if (key === root) commitBlock = bytes;
    },
    (named) => {
      if (named.length !== 1) throw new BackfillFailure('bad_car', `the CAR names ${named.length} roots; a repo export names one, its commit`);
      root = base32Multibase(named[0]!.bytes);
    },
  );
  const commit = parseCommit(commitBlock, roots[0]!.toString(), did);
  await checkCommit(commit);
  return commit;
}

/**
 * Streams the CAR's blocks to `onBlock` keyed by CID, each checked to be a CIDv1 dag-cbor
 * sha2-256 block whose bytes hash to its CID, once `checkRoots` passed the roots the CAR names;
 * resolves with those roots.
 */
async function forEachVerifiedBlock(
  chunks: AsyncIterable<Uint8Array>,
  maxBytes: number,
  onBlock: (key: string, bytes: Uint8Array<ArrayBuffer>) => void,
  checkRoots: (roots: CID[]) => void = () => {},
): Promise<CID[]> {
  let held = 0;
  try {
    const car = await CarBlockIterator.fromIterable(chunks);
    const roots = await car.getRoots();
    checkRoots(roots);
    for await (const { cid, bytes } of car) {
      if (cid.version !== 1 || cid.code !== DAG_CBOR || cid.multihash.code !== SHA2_256) {
        throw new BackfillFailure('bad_car', `block ${cid} is not a CIDv1 dag-cbor sha2-256 block, the only kind a repo holds`);
      }
      const digest = createHash('sha256').update(bytes).digest();
      if (!digest.equals(cid.multihash.digest)) throw new BackfillFailure('cid_mismatch', `the bytes of block ${cid} do not hash to its CID`);
      held += cid.bytes.length + bytes.length + BLOCK_OVERHEAD_BYTES;
      if (held > maxBytes) {
        throw new BackfillFailure('too_large', `the repo is over this gateway's limit of ${maxBytes} bytes, counting each block ${BLOCK_OVERHEAD_BYTES} bytes more than its size (what holding it costs)`);
      }
      // A flat string, where multiformats' cid.toString() builds a ~1.7 KB V8 rope per key.
      onBlock(base32Multibase(cid.bytes), bytes as Uint8Array<ArrayBuffer>);
    }
    return roots;
  } catch (err) {
    if (err instanceof BackfillFailure) throw err;
    throw new BackfillFailure('bad_car', `the CAR is malformed or truncated: ${(err as Error).message}`);
  }
}

function parseCommit(block: Uint8Array | undefined, cid: string, did: string): SignedCommit {
  if (!block) throw new BackfillFailure('missing_block', `the commit block ${cid} (the CAR's root) is missing`);
  let commit: Record<string, unknown>;
  try {
    commit = decodeDagCbor(block);
  } catch (err) {
    throw new BackfillFailure('bad_commit', `the commit block does not decode: ${(err as Error).message}`);
  }
  const bad = (what: string) => new BackfillFailure('bad_commit', `the commit ${what}`);
  if (typeof commit !== 'object' || commit === null) throw bad('is not a map');
  if (commit.version !== 3) throw bad(`has version ${JSON.stringify(commit.version)}; only repo version 3 is read`);
  if (!isDid(commit.did) || commit.did !== did) throw bad(`is for ${JSON.stringify(commit.did)}, not ${did}`);
  if (!(CID.asCID(commit.data) && isTid(commit.rev))) throw bad('lacks a data root CID or a TID rev');
  if (!(commit.sig instanceof Uint8Array)) throw bad('is not signed');
  const prev = commit.prev == null ? null : CID.asCID(commit.prev);
  const { sig, ...unsigned } = commit;
  return { did, version: 3, data: CID.asCID(commit.data)!, rev: commit.rev as string, prev, sig: sig as Uint8Array, unsigned: encodeDagCbor(unsigned) };
}

/** Every record reachable from the MST root `dataCid`, as JSON, in key order (see mstEntries). */
export async function walkRecords(blocks: BlockMap, dataCid: string): Promise<{ records: RepoRecord[]; skipped: number; bytes: number }> {
  const records: RepoRecord[] = [];
  let skipped = 0;
  let bytes = 0;
  for await (const [key, cid] of mstEntries(blocks, dataCid)) {
    const slash = key.indexOf('/');
    const block = blocks.get(cid);
    if (!block) throw new BackfillFailure('missing_block', `the block of record ${key} (${cid}) is missing from the CAR`);
    let json: string;
    try {
      json = recordToJson(block);
    } catch {
      skipped++;
      continue;
    }
    records.push({ collection: key.slice(0, slash), rkey: key.slice(slash + 1), cid, json });
    bytes += json.length + key.length + cid.length + 64;
  }
  return { records, skipped, bytes };
}

/**
 * The MST's [key, value CID] pairs from `dataCid`, in key order, through @atcute/mst's walker
 * in untrusted mode (subtree heights are checked). Keys must strictly increase across the whole
 * walk, and the walker may load at most as many nodes as there are blocks: together they make a
 * malformed tree (a repeated subtree, a cycle of keyless nodes) end with bad_mst instead of
 * looping.
 */
export async function* mstEntries(blocks: BlockMap, dataCid: string): AsyncIterable<[string, string]> {
  const nodes = new BoundedNodeStore(new MapBlockStore(blocks), blocks.size);
  try {
    const root = await nodes.get(dataCid);
    if (root.keys.length === 0) {
      if (root.subtrees[0] === null) return;
      throw new BackfillFailure('bad_mst', 'the MST root has no keys but a subtree (a canonical tree has no such root)');
    }
    const walker = await NodeWalker.create(nodes, dataCid);
    let previousKey = '';
    for await (const [key, cid] of walker.entries()) {
      if (key <= previousKey) throw new BackfillFailure('bad_mst', `MST keys out of order: ${JSON.stringify(key)} after ${JSON.stringify(previousKey)}`);
      previousKey = key;
      yield [key, cid.$link];
    }
  } catch (err) {
    if (err instanceof BackfillFailure) throw err;
    if (err instanceof MissingBlockError) throw new BackfillFailure('missing_block', `the MST node ${err.cid} is missing from the CAR`);
    throw new BackfillFailure('bad_mst', `the MST is malformed: ${(err as Error).message}`);
  }
}

class MapBlockStore implements ReadonlyBlockStore {
  constructor(readonly blocks: BlockMap) {}

  async get(cid: string) {
    return this.blocks.get(cid) ?? null;
  }

  async getMany(cids: string[]) {
    const found: BlockMap = new Map();
    const missing: string[] = [];
    for (const cid of cids) {
      const bytes = this.blocks.get(cid);
      if (bytes) found.set(cid, bytes);
      else missing.push(cid);
    }
    return { found, missing };
  }

  async has(cid: string) {
    return this.blocks.has(cid);
  }
}

/** A NodeStore that refuses to load more nodes than the CAR holds blocks (see walkRecords). */
class BoundedNodeStore extends NodeStore {
  #loads = 0;

  constructor(
    store: ReadonlyBlockStore,
    readonly maxLoads: number,
  ) {
    // NodeStore types its store as writable; the walk only reads.
    super(store as ConstructorParameters<typeof NodeStore>[0]);
  }

  override async get(cid: string | null): Promise<MSTNode> {
    if (cid !== null && ++this.#loads > this.maxLoads) {
      throw new BackfillFailure('bad_mst', 'the MST visits more nodes than the CAR holds blocks: it has a cycle or a repeated subtree');
    }
    return super.get(cid);
  }
}
