import { CidLinkWrapper, fromCidLink, type CidLink } from '@atcute/cid';
import type { CommitProof } from '../upstream/index.ts';
import { VerifyError } from './failure.ts';
import { KeyHeights } from './mst-node.ts';
import { MissingNodeError, ProofTree } from './proof-tree.ts';

/** The CID of an MST with no entries (one empty node), where a repo's first commit starts. */
const EMPTY_TREE = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm';

/** This thread's key heights, shared by every commit it checks (a repo's keys recur). */
const heights = new KeyHeights();

interface CheckedOp {
  action: 'create' | 'update' | 'delete';
  path: string;
  cid: CidLinkWrapper | null;
  prev: CidLinkWrapper | null;
}

/**
 * The sync 1.1 proof (https://atproto.com/specs/sync): starting from the commit's new MST root
 * `data`, undo the ops last to first — a create is deleted, an update or a delete puts `prev`
 * back — checking before each that the tree holds what the op says it wrote; the root reached
 * must be `prevData` (or, for a repo's first commit, which has none, the empty tree). The CAR
 * must carry every MST node this touches, each hashed against its CID (proof-tree.ts).
 */
export async function checkInversion(proof: CommitProof, data: CidLink): Promise<void> {
  const ops = checkOps(proof);
  const tree = new ProofTree(proof.car, heights);
  let root = data instanceof CidLinkWrapper ? data : new CidLinkWrapper(fromCidLink(data).bytes);
  try {
    for (const op of [...ops].reverse()) {
      const found = tree.find(root, op.path);
      if (!sameLink(found, op.cid)) {
        throw new VerifyError('bad_inversion', `${op.action} ${op.path}: the new tree holds ${found?.$link ?? 'nothing'} there, the op says ${op.cid?.$link ?? 'nothing'}`);
      }
      root = op.action === 'create' ? tree.delete(root, op.path) : tree.put(root, op.path, op.prev!);
    }
  } catch (err) {
    if (err instanceof VerifyError) throw err;
    if (err instanceof MissingNodeError) throw new VerifyError('bad_inversion', `the proof is incomplete: ${err.message}`);
    throw new VerifyError('bad_inversion', `the MST is malformed: ${(err as Error).message}`);
  }
  if (!proof.prevData) {
    // Only a repo's first commit has nothing before it: undoing its ops must empty the tree.
    if (root.$link !== EMPTY_TREE) throw new VerifyError('missing_prev_data', 'the commit has no prevData, and is not the repo\'s first (a pre-sync-1.1 sender)');
    return;
  }
  if (!Buffer.from(root.bytes).equals(proof.prevData.bytes)) {
    throw new VerifyError('bad_inversion', `undoing the ops gives MST root ${root.$link}, not prevData ${proof.prevData.toString()}`);
  }
}

/**
 * What ties the ops to the signed commit in `signatures` mode: its new MST root `data` holds what
 * each op says it wrote — a create's or update's cid at its path, nothing at a delete's — read
 * from the MST nodes the CAR carries, each hashed against its CID. Without it a relay could keep a
 * repo's real signed commit and swap in records of its own. Unlike the undo (checkInversion), it
 * needs neither `prevData` nor ops' `prev`, which pre-sync-1.1 senders leave out.
 */
export function checkOpsInTree(proof: CommitProof, data: CidLink): void {
  const tree = new ProofTree(proof.car, heights);
  const root = data instanceof CidLinkWrapper ? data : new CidLinkWrapper(fromCidLink(data).bytes);
  for (const op of proof.ops) {
    if (typeof op.path !== 'string') throw new VerifyError('op_not_in_tree', 'an op has no path');
    const wrote = op.action === 'delete' ? null : op.cid ? new CidLinkWrapper(op.cid.bytes) : undefined;
    if (wrote === undefined) throw new VerifyError('op_not_in_tree', `${String(op.action)} ${op.path} has no cid`);
    let found: CidLinkWrapper | null;
    try {
      found = tree.find(root, op.path);
    } catch (err) {
      if (err instanceof MissingNodeError) throw new VerifyError('op_not_in_tree', `the CAR lacks the MST nodes to find ${op.path}: ${err.message}`);
      throw new VerifyError('op_not_in_tree', `the MST is malformed: ${(err as Error).message}`);
    }
    if (!sameLink(found, wrote)) {
      throw new VerifyError('op_not_in_tree', `${String(op.action)} ${op.path}: the signed tree holds ${found?.$link ?? 'nothing'} there, the op says ${wrote?.$link ?? 'nothing'}`);
    }
  }
}

function sameLink(a: CidLinkWrapper | null, b: CidLinkWrapper | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.from(a.bytes).equals(b.bytes);
}

/** Each op's shape, and its `prev` against its action (what sync 1.1 requires of a sender). */
function checkOps(proof: CommitProof): CheckedOp[] {
  const paths = new Set<string>();
  return proof.ops.map((op) => {
    if (typeof op.path !== 'string') throw new VerifyError('bad_inversion', 'an op has no path');
    if (paths.has(op.path)) throw new VerifyError('bad_inversion', `${op.path} is written twice in one commit`);
    paths.add(op.path);
    const cid = op.cid ? new CidLinkWrapper(op.cid.bytes) : null;
    const prev = op.prev ? new CidLinkWrapper(op.prev.bytes) : null;
    switch (op.action) {
      case 'create':
        if (prev) throw new VerifyError('bad_op_prev', `create ${op.path} has a prev`);
        if (!cid) throw new VerifyError('bad_inversion', `create ${op.path} has no cid`);
        return { action: 'create', path: op.path, cid, prev };
      case 'update':
        if (!prev) throw new VerifyError('bad_op_prev', `update ${op.path} has no prev`);
        if (!cid) throw new VerifyError('bad_inversion', `update ${op.path} has no cid`);
        return { action: 'update', path: op.path, cid, prev };
      case 'delete':
        if (!prev) throw new VerifyError('bad_op_prev', `delete ${op.path} has no prev`);
        if (cid) throw new VerifyError('bad_inversion', `delete ${op.path} has a cid`);
        return { action: 'delete', path: op.path, cid, prev };
      default:
        throw new VerifyError('bad_inversion', `op action ${JSON.stringify(op.action)} is not create, update or delete`);
    }
  });
}
