import { CidLinkWrapper, type CidLink } from '@atcute/cid';
import { MemoryBlockStore, MissingBlockError, NodeStore, NodeWalker, NodeWrangler, OverlayBlockStore } from '@atcute/mst';
import type { CommitProof } from '../upstream/index.ts';
import { CarBlockStore } from './car-block-store.ts';
import { VerifyError } from './failure.ts';

/** The CID of an MST with no entries (one empty node), where a repo's first commit starts. */
const EMPTY_TREE = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm';

interface CheckedOp {
  action: 'create' | 'update' | 'delete';
  path: string;
  cid: CidLink | null;
  prev: CidLink | null;
}

/**
 * The sync 1.1 proof (https://atproto.com/specs/sync): starting from the commit's new MST root
 * `data`, undo the ops last to first — a create is deleted, an update or a delete puts `prev`
 * back — checking before each that the tree holds what the op says it wrote; the root reached
 * must be `prevData` (or, for a repo's first commit, which has none, the empty tree). The CAR must carry every MST node this touches, each verified against its
 * CID (CarBlockStore). @atcute/mst does the tree work.
 */
export async function checkInversion(proof: CommitProof, data: CidLink): Promise<void> {
  const ops = checkOps(proof);
  const store = new NodeStore(new OverlayBlockStore(new MemoryBlockStore(), new CarBlockStore(proof.car)));
  const wrangler = new NodeWrangler(store);
  let root = data.$link;
  try {
    for (const op of [...ops].reverse()) {
      const found = await (await NodeWalker.create(store, root)).findRpath(op.path);
      if ((found?.$link ?? null) !== (op.cid?.$link ?? null)) {
        throw new VerifyError('bad_inversion', `${op.action} ${op.path}: the new tree holds ${found?.$link ?? 'nothing'} there, the op says ${op.cid?.$link ?? 'nothing'}`);
      }
      root = op.action === 'create' ? await wrangler.deleteRecord(root, op.path) : await wrangler.putRecord(root, op.path, op.prev!);
    }
  } catch (err) {
    if (err instanceof VerifyError) throw err;
    if (err instanceof MissingBlockError) throw new VerifyError('bad_inversion', `the proof is incomplete: MST node ${err.cid} is not in the CAR (or does not match its CID)`);
    throw new VerifyError('bad_inversion', `the MST is malformed: ${(err as Error).message}`);
  }
  if (!proof.prevData) {
    // Only a repo's first commit has nothing before it: undoing its ops must empty the tree.
    if (root !== EMPTY_TREE) throw new VerifyError('missing_prev_data', 'the commit has no prevData, and is not the repo\'s first (a pre-sync-1.1 sender)');
    return;
  }
  const expected = proof.prevData.toString();
  if (root !== expected) throw new VerifyError('bad_inversion', `undoing the ops gives MST root ${root}, not prevData ${expected}`);
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
