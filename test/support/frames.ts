/**
 * Builds subscribeRepos frames the way a relay does: a DAG-CBOR header and body, and for
 * commits a CAR slice whose record blocks hash to the CIDs the ops name. Test-only: the signed
 * commit block carries a dummy signature and MST root, which contrail does not check (yet).
 */
import { createHash } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { createWriter, blockLength, headerLength } from '@ipld/car/buffer-writer';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';

/** Made-up revs and record keys: the demo upstream's, shared (src/upstream/seeded.ts). */
export { tidFor } from '../../src/upstream/index.ts';

const SHA2_256 = 0x12;

export interface Block {
  cid: CID;
  bytes: Uint8Array;
}

export function cborBlock(value: unknown): Block {
  const bytes = dagCbor.encode(value);
  const digest = createDigest(SHA2_256, createHash('sha256').update(bytes).digest());
  return { cid: CID.createV1(dagCbor.code, digest), bytes };
}

export function encodeFrame(header: object, body: unknown): Uint8Array {
  return Buffer.concat([dagCbor.encode(header), dagCbor.encode(body)]);
}

export function carOf(roots: CID[], blocks: Block[]): Uint8Array {
  const size = headerLength({ roots }) + blocks.reduce((sum, block) => sum + blockLength(block), 0);
  const writer = createWriter(new ArrayBuffer(size), { roots });
  for (const block of blocks) writer.write(block);
  return writer.close();
}

export interface OpSpec {
  action: 'create' | 'update' | 'delete';
  /** "collection/rkey" */
  path: string;
  record?: Record<string, unknown>;
}

export interface CommitSpec {
  seq: number;
  repo: string;
  rev: string;
  ops: OpSpec[];
  time?: string;
  since?: string | null;
  /** Extra blocks to put in the CAR (e.g. a block deliberately not matching its CID). */
  extraBlocks?: Block[];
  /** Leave record blocks out of the CAR. */
  omitRecords?: boolean;
  /** MST nodes proving the ops (a real commit carries several); they ride along unread. */
  proofBlocks?: Block[];
}

export function commitFrame(spec: CommitSpec): Uint8Array {
  const records = spec.ops.map((op) => (op.record ? cborBlock(op.record) : undefined));
  const commit = cborBlock({
    did: spec.repo,
    version: 3,
    data: cborBlock({ e: [], l: null }).cid,
    rev: spec.rev,
    prev: null,
    sig: new Uint8Array(64),
  });
  const blocks = [
    ...(spec.proofBlocks ?? []),
    ...(spec.omitRecords ? [] : (records.filter(Boolean) as Block[])),
    commit,
    ...(spec.extraBlocks ?? []),
  ];
  return encodeFrame(
    { op: 1, t: '#commit' },
    {
      seq: spec.seq,
      rebase: false,
      tooBig: false,
      repo: spec.repo,
      commit: commit.cid,
      rev: spec.rev,
      since: spec.since === undefined ? null : spec.since,
      blocks: carOf([commit.cid], blocks),
      ops: spec.ops.map((op, i) => ({ action: op.action, path: op.path, cid: records[i]?.cid ?? null })),
      blobs: [],
      time: spec.time ?? new Date().toISOString(),
      prevData: commit.cid,
    },
  );
}

export function identityFrame(spec: { seq: number; did: string; handle?: string; time?: string }): Uint8Array {
  const { seq, did, handle, time = new Date().toISOString() } = spec;
  return encodeFrame({ op: 1, t: '#identity' }, handle === undefined ? { seq, did, time } : { seq, did, time, handle });
}

export function accountFrame(spec: { seq: number; did: string; active: boolean; status?: string; time?: string }): Uint8Array {
  const { seq, did, active, status, time = new Date().toISOString() } = spec;
  return encodeFrame({ op: 1, t: '#account' }, status === undefined ? { seq, did, time, active } : { seq, did, time, active, status });
}

export function syncFrame(spec: { seq: number; did: string; rev: string }): Uint8Array {
  const commit = cborBlock({ did: spec.did, version: 3, data: cborBlock({ e: [], l: null }).cid, rev: spec.rev, prev: null, sig: new Uint8Array(64) });
  return encodeFrame(
    { op: 1, t: '#sync' },
    { seq: spec.seq, did: spec.did, rev: spec.rev, blocks: carOf([commit.cid], [commit]), time: new Date().toISOString() },
  );
}

export function infoFrame(name: string, message?: string): Uint8Array {
  return encodeFrame({ op: 1, t: '#info' }, message === undefined ? { name } : { name, message });
}

export function errorFrame(error: string, message?: string): Uint8Array {
  return encodeFrame({ op: -1 }, message === undefined ? { error } : { error, message });
}
