/** Why a commit or #sync was not let through. Used as a metric label. */
export type VerifyFailure =
  /** The DID could not be resolved, or its document names no usable atproto signing key. */
  | 'unknown_key'
  /** The signature does not verify with the DID's current key (after a refresh). */
  | 'bad_signature'
  /** The signed commit is missing from the CAR, does not hash to its CID, or is not a v3 commit of this repo. */
  | 'bad_commit'
  /** The frame's `rev` is not the signed commit's. */
  | 'rev_mismatch'
  /** The rev is not newer than the last verified commit's (a replay). */
  | 'rev_not_newer'
  /** The rev's timestamp is too far in the future. */
  | 'rev_in_future'
  /** An op's `prev` contradicts its action (a create with one, an update or delete without). */
  | 'bad_op_prev'
  /** The ops do not take the MST from `prevData` to the commit's `data` (or the proof is incomplete). */
  | 'bad_inversion'
  /** `signatures`: the commit's MST (`data`) does not hold what an op says it wrote, or the CAR lacks the nodes to tell. */
  | 'op_not_in_tree'
  /** `full`: the commit's `prevData` is not the MST root of the repo's last verified commit (a commit left out, or ops hidden). */
  | 'broken_chain'
  /** `full` needs `prevData` (but on a repo's first commit), which pre-sync-1.1 senders leave out. */
  | 'missing_prev_data'
  /** The repo's held commits (waiting for its key) passed the byte bound. */
  | 'held_overflow'
  /** The repo is out of sync after an earlier failure: its commits wait for a valid #sync or a resync. */
  | 'out_of_sync';

export class VerifyError extends Error {
  constructor(
    readonly reason: VerifyFailure,
    message: string,
  ) {
    super(message);
  }
}

/** A check's error as a VerifyError: one that is not (a malformed block, say) makes the commit a bad_commit. */
export function asVerifyError(err: unknown): VerifyError {
  return err instanceof VerifyError ? err : new VerifyError('bad_commit', (err as Error).message);
}
