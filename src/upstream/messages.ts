import { hash } from 'node:crypto';
import { Link, isDid, isNsid, isRecordKey, isTid } from '../atproto/index.ts';
import { CarSlice } from './car.ts';
import { DropError, type DropReason } from './drop.ts';
import { decodeDagCbor, isMap, type Frame } from './frame.ts';

export type OpAction = 'create' | 'update' | 'delete';

/** One record-level op of a commit whose record block (if any) hashed to the CID it names. */
export interface RecordOp {
  action: OpAction;
  collection: string;
  rkey: string;
  /** CID string of the new record; null for deletes. */
  cid: string | null;
  /** The record's verified DAG-CBOR block; null for deletes. */
  record: Uint8Array | null;
}

export interface OpDrop {
  reason: DropReason;
  path: string;
  detail: string;
}

/**
 * What a commit frame carries to prove itself (sync 1.1), kept as references into the frame so
 * holding it costs nothing: read only when verification is on (src/verify).
 */
export interface CommitProof {
  /** The `commit` field: CID of the signed commit block. Undefined when the frame lacks it. */
  commit: Link | undefined;
  /** The `prevData` field: MST root before this commit. Undefined from pre-sync-1.1 senders. */
  prevData: Link | undefined;
  /** The CAR slice: the signed commit, the MST nodes the ops touch, the new records. */
  car: CarSlice;
  /** Every op as sent, including those dropped from `ops` (a proof covers them all). */
  ops: readonly ProofOp[];
}

/** One op as the frame states it; fields are undefined when absent or of the wrong type. */
export interface ProofOp {
  action: unknown;
  path: unknown;
  cid: Link | undefined;
  prev: Link | undefined;
}

export type UpstreamMessage =
  | { type: 'commit'; seq: number; repo: string; rev: string; time: string; ops: RecordOp[]; drops: OpDrop[]; proof: CommitProof }
  | { type: 'identity'; seq: number; did: string; time: string; handle?: string }
  | { type: 'account'; seq: number; did: string; time: string; active: boolean; status?: string }
  /**
   * `blocks`: the CAR holding the signed commit the repo now stands at; `data`: that commit's
   * MST root (CID string), read from it. The signature is verification's business.
   */
  | { type: 'sync'; seq: number; did: string; rev: string; time: string; blocks: Uint8Array; data: string }
  | { type: 'info'; name: string; message?: string }
  | { type: 'error'; error: string; message?: string };

/** Turns a decoded frame into a typed message; throws DropError when the frame is unusable. */
export function parseMessage(frame: Frame): UpstreamMessage {
  if (frame.op === -1) return { type: 'error', ...frame.body };
  const body = frame.body;
  switch (frame.type) {
    case '#commit':
      return parseCommit(body);
    case '#identity':
      return {
        type: 'identity',
        seq: seqOf(body),
        did: didOf(body.did),
        time: stringField(body, 'time'),
        ...(typeof body.handle === 'string' ? { handle: body.handle } : {}),
      };
    case '#account':
      if (typeof body.active !== 'boolean') throw new DropError('bad_field', 'account.active is not a boolean');
      return {
        type: 'account',
        seq: seqOf(body),
        did: didOf(body.did),
        time: stringField(body, 'time'),
        active: body.active,
        ...(typeof body.status === 'string' ? { status: body.status } : {}),
      };
    case '#sync': {
      if (!(body.blocks instanceof Uint8Array)) throw new DropError('bad_field', 'sync.blocks is not bytes');
      const did = didOf(body.did);
      const rev = revOf(body);
      return { type: 'sync', seq: seqOf(body), did, rev, time: stringField(body, 'time'), blocks: body.blocks, data: syncedData(body.blocks, did, rev) };
    }
    case '#info':
      return {
        type: 'info',
        name: stringField(body, 'name'),
        ...(typeof body.message === 'string' ? { message: body.message } : {}),
      };
    default:
      throw new DropError('unknown_type', `unknown message type ${JSON.stringify(frame.type)}`);
  }
}

/**
 * subscribeRepos' lexicon bounds a #commit (a PDS writes at most 200 records per commit). Past them
 * a frame is dropped: finding each op's record scans the CAR's blocks, so a relay's 5 MB commit of
 * 20,000 ops over 40,000 tiny blocks held the main thread for seconds.
 */
const MAX_COMMIT_OPS = 200;
const MAX_COMMIT_BLOCKS_BYTES = 2_000_000;

function parseCommit(body: Record<string, unknown>): UpstreamMessage {
  const seq = seqOf(body);
  const repo = didOf(body.repo);
  const rev = revOf(body);
  const time = stringField(body, 'time');
  if (!Array.isArray(body.ops)) throw new DropError('bad_field', 'commit.ops is not an array');
  if (!(body.blocks instanceof Uint8Array)) throw new DropError('bad_field', 'commit.blocks is not bytes');
  if (body.ops.length > MAX_COMMIT_OPS) throw new DropError('over_limit', `the commit has ${body.ops.length} ops; subscribeRepos allows ${MAX_COMMIT_OPS}`);
  if (body.blocks.length > MAX_COMMIT_BLOCKS_BYTES) {
    throw new DropError('over_limit', `the commit's blocks are ${body.blocks.length} bytes; subscribeRepos allows ${MAX_COMMIT_BLOCKS_BYTES}`);
  }
  const car = new CarSlice(body.blocks);
  const ops: RecordOp[] = [];
  const drops: OpDrop[] = [];
  for (const raw of body.ops as unknown[]) {
    try {
      ops.push(parseOp(raw, car));
    } catch (err) {
      if (!(err instanceof DropError)) throw err;
      const path = typeof (raw as { path?: unknown })?.path === 'string' ? (raw as { path: string }).path : '?';
      drops.push({ reason: err.reason, path, detail: err.message });
    }
  }
  const proof: CommitProof = {
    commit: linkOrUndefined(body.commit),
    prevData: linkOrUndefined(body.prevData),
    car,
    ops: (body.ops as unknown[]).map((raw) => {
      const op = (raw ?? {}) as { action?: unknown; path?: unknown; cid?: unknown; prev?: unknown };
      return { action: op.action, path: op.path, cid: linkOrUndefined(op.cid), prev: linkOrUndefined(op.prev) };
    }),
  };
  return { type: 'commit', seq, repo, rev, time, ops, drops, proof };
}

/**
 * The MST root of the commit a #sync's CAR holds (its header's root): the block must be there,
 * hash to its CID, and be a commit of `did` at `rev`, else the frame is dropped — an event that
 * names a repo state must name the one the frame carries.
 */
function syncedData(blocks: Uint8Array, did: string, rev: string): string {
  const car = new CarSlice(blocks);
  const header = decodeDagCbor(car.header);
  const root = isMap(header) && Array.isArray(header.roots) ? header.roots[0] : undefined;
  if (!(root instanceof Link) || !root.isDagCborSha256) throw new DropError('bad_car', 'the #sync CAR names no dag-cbor sha2-256 root');
  const block = car.find(root.bytes);
  if (!block) throw new DropError('record_missing', `the #sync commit block ${root} is not in the CAR`);
  if (!(hash('sha256', block, 'buffer') as unknown as Buffer).equals(root.digest)) throw new DropError('cid_mismatch', `the #sync commit block does not hash to ${root}`);
  const commit = decodeDagCbor(block);
  if (!isMap(commit) || commit.did !== did || commit.rev !== rev || !(commit.data instanceof Link)) {
    throw new DropError('bad_field', `the #sync commit is not ${did}'s at rev ${rev} with a data root`);
  }
  return commit.data.toString();
}

function linkOrUndefined(value: unknown): Link | undefined {
  return value instanceof Link ? value : undefined;
}

function parseOp(raw: unknown, car: CarSlice): RecordOp {
  const op = raw as { action?: unknown; path?: unknown; cid?: unknown };
  if (typeof op?.path !== 'string') throw new DropError('bad_path', 'op.path is not a string');
  const slash = op.path.indexOf('/');
  const collection = op.path.slice(0, slash);
  const rkey = op.path.slice(slash + 1);
  if (slash < 0 || !isNsid(collection) || !isRecordKey(rkey)) {
    throw new DropError('bad_path', `op.path ${JSON.stringify(op.path)} is not <nsid>/<record-key>`);
  }
  if (op.action === 'delete') return { action: 'delete', collection, rkey, cid: null, record: null };
  if (op.action !== 'create' && op.action !== 'update') {
    throw new DropError('bad_action', `op.action ${JSON.stringify(op.action)} is not create, update or delete`);
  }
  const cid = op.cid;
  if (!(cid instanceof Link)) throw new DropError('bad_field', `${op.action} op without a CID`);
  if (!cid.isDagCborSha256) throw new DropError('unsupported_cid', `record CID ${cid} is not CIDv1 dag-cbor with sha2-256`);
  const record = car.find(cid.bytes);
  if (!record) throw new DropError('record_missing', `record block ${cid} is not in the CAR`);
  const digest = hash('sha256', record, 'buffer') as unknown as Buffer;
  if (!digest.equals(cid.digest)) throw new DropError('cid_mismatch', `record block does not hash to ${cid}`);
  return { action: op.action, collection, rkey, cid: cid.toString(), record };
}

function seqOf(body: Record<string, unknown>): number {
  const seq = body.seq;
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw new DropError('bad_field', 'seq is not a non-negative integer');
  return seq as number;
}

function didOf(value: unknown): string {
  if (!isDid(value)) throw new DropError('bad_field', `${JSON.stringify(value)} is not a DID`);
  return value;
}

/**
 * A #commit's or #sync's rev: a TID, as the lexicon says. The Ingester keeps each repo's newest rev
 * for good and skips commits not newer, comparing them as strings (TIDs sort so): a rev of any other
 * shape could sort above every real one and silence the repo.
 */
function revOf(body: Record<string, unknown>): string {
  const rev = stringField(body, 'rev');
  if (!isTid(rev)) throw new DropError('bad_field', `rev ${JSON.stringify(rev)} is not a TID`);
  return rev;
}

function stringField(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== 'string') throw new DropError('bad_field', `${key} is not a string`);
  return value;
}
