/**
 * Real signed repos for verification tests and benchmarks: @atproto/repo (the reference
 * implementation, the code the PDS runs) writes the records, builds the MST and signs each
 * commit; this turns its output into subscribeRepos #commit and #sync frame bodies the way a
 * PDS does (sync 1.1: `prevData`, `ops[].prev`, and the MST nodes that prove the ops in the CAR).
 */
import { Secp256k1Keypair, type Keypair } from '@atproto/crypto';
import { BlockMap, MemoryBlockstore, Repo, WriteOpAction, blocksToCarFile, cidForRecord, formatDataKey, getFullRepo, type RecordWriteOp } from '@atproto/repo';
import { CID } from 'multiformats/cid';
import { encodeFrame } from './frames.ts';

/** @atproto/repo's CIDs may come from another multiformats copy: rewrap for @ipld/dag-cbor. */
const toCid = (cid: { bytes: Uint8Array }): CID => CID.decode(cid.bytes);

export interface Write {
  action: 'create' | 'update' | 'delete';
  collection: string;
  rkey: string;
  record?: Record<string, unknown>;
}

export type CommitBody = {
  seq: number;
  repo: string;
  commit: CID;
  rev: string;
  since: string | null;
  blocks: Uint8Array;
  ops: { action: string; path: string; cid: CID | null; prev?: CID }[];
  prevData: CID;
  rebase: false;
  tooBig: false;
  blobs: CID[];
  time: string;
};

export class SignedRepo {
  private constructor(
    readonly did: string,
    private keypair: Keypair,
    private readonly storage: MemoryBlockstore,
    private repo: Repo,
  ) {}

  /** A new repo (with `initial` records in its first commit); a K-256 key unless one is given. */
  static async create(did: string, keypair?: Keypair, initial: Write[] = []): Promise<SignedRepo> {
    const key = keypair ?? (await Secp256k1Keypair.create({ exportable: true }));
    const storage = new MemoryBlockstore();
    const creates = initial.map((write) => ({ action: WriteOpAction.Create as const, collection: write.collection, rkey: write.rkey, record: write.record! }));
    const repo = await Repo.create(storage, did, key, creates);
    return new SignedRepo(did, key, storage, repo);
  }

  /** The key's did:key, as a DID document's #atproto verification method names it. */
  get signingKey(): string {
    return this.keypair.did();
  }

  get rev(): string {
    return this.repo.commit.rev;
  }

  /** The rev and MST root (a CID's bytes) of its latest commit: what a resync from its PDS resolves with now. */
  get head(): { rev: string; data: Uint8Array } {
    return { rev: this.repo.commit.rev, data: this.repo.commit.data.bytes };
  }

  /** Signs from now on with another key (a rotation; the DID document must follow). */
  rotateKey(keypair: Keypair): void {
    this.keypair = keypair;
  }

  /** Applies the writes as one signed commit and returns its #commit body. */
  async commit(seq: number, writes: Write[]): Promise<CommitBody> {
    const prevData = this.repo.commit.data;
    const ops: CommitBody['ops'] = [];
    const repoWrites: RecordWriteOp[] = [];
    for (const write of writes) {
      const path = formatDataKey(write.collection, write.rkey);
      const prev = await this.repo.data.get(path);
      if (write.action === 'delete') {
        repoWrites.push({ action: WriteOpAction.Delete, collection: write.collection, rkey: write.rkey });
        ops.push({ action: 'delete', path, cid: null, ...(prev ? { prev: toCid(prev) } : {}) });
      } else {
        const action = write.action === 'create' ? WriteOpAction.Create : WriteOpAction.Update;
        repoWrites.push({ action, collection: write.collection, rkey: write.rkey, record: write.record! });
        ops.push({ action: write.action, path, cid: toCid(await cidForRecord(write.record!)), ...(prev ? { prev: toCid(prev) } : {}) });
      }
    }
    const commit = await this.repo.formatCommit(repoWrites, this.keypair);
    this.repo = await this.repo.applyCommit(commit);
    const blocks = new BlockMap();
    blocks.addMap(commit.newBlocks);
    blocks.addMap(commit.relevantBlocks); // the MST nodes that prove the ops (sync 1.1)
    return {
      seq,
      repo: this.did,
      commit: toCid(commit.cid),
      rev: commit.rev,
      since: commit.since,
      blocks: await blocksToCarFile(commit.cid, blocks),
      ops,
      prevData: toCid(prevData),
      rebase: false,
      tooBig: false,
      blobs: [],
      time: new Date().toISOString(),
    };
  }

  /** Every record as `collection/rkey<TAB>cid`, in the MST's key order (@atproto/repo's own walk). */
  async listing(): Promise<string[]> {
    return (await this.repo.data.list()).map((leaf) => `${leaf.key}\t${leaf.value.toString()}`);
  }

  /** Its latest signed commit's CID and rev, as com.atproto.sync.getLatestCommit answers. */
  get latestCommit(): { cid: string; rev: string } {
    return { cid: this.repo.cid.toString(), rev: this.repo.commit.rev };
  }

  /** The blocks named, as a CAR naming no root, as com.atproto.sync.getBlocks sends them; undefined if it lacks one. */
  async blocks(cids: string[]): Promise<Uint8Array | undefined> {
    const blocks = new BlockMap();
    for (const text of cids) {
      const cid = CID.parse(text);
      const bytes = await this.storage.getBytes(cid);
      if (!bytes) return undefined;
      blocks.set(cid, bytes);
    }
    return blocksToCarFile(null, blocks);
  }

  /** The whole repo at its current commit as a CAR, as com.atproto.sync.getRepo streams it (the PDS's own code). */
  car(): AsyncIterable<Uint8Array> {
    return getFullRepo(this.storage, this.repo.cid);
  }

  /** A #sync body: the repo stands at its current signed commit. */
  async sync(seq: number): Promise<{ seq: number; did: string; blocks: Uint8Array; rev: string; time: string }> {
    const cid = this.repo.cid;
    const bytes = await this.storage.getBytes(cid);
    const blocks = new BlockMap();
    blocks.set(cid, bytes!);
    return { seq, did: this.did, blocks: await blocksToCarFile(cid, blocks), rev: this.repo.commit.rev, time: new Date().toISOString() };
  }
}

export function commitFrameOf(body: CommitBody): Uint8Array {
  return encodeFrame({ op: 1, t: '#commit' }, body);
}

export function syncFrameOf(body: Awaited<ReturnType<SignedRepo['sync']>>): Uint8Array {
  return encodeFrame({ op: 1, t: '#sync' }, body);
}
