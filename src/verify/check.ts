import { decodeFirst, isCidLink } from '@atcute/cbor';
import { CidLinkWrapper, fromCidLink } from '@atcute/cid';
import { FUTURE_REV_TOLERANCE_MS, Link, isTid, tidMicros } from '../atproto/index.ts';
import { CarSlice, type UpstreamMessage } from '../upstream/index.ts';
import { VerifyError } from './failure.ts';
import { checkInversion, checkOpsInTree } from './inversion.ts';
import { readSignedCommit, type SignedCommit } from './signed-commit.ts';
import type { SigningKeys } from './signing-keys.ts';

export type VerifyMode = 'signatures' | 'full';
export type CommitMessage = Extract<UpstreamMessage, { type: 'commit' }>;
export type SyncMessage = Extract<UpstreamMessage, { type: 'sync' }>;
/** What checkCommit reads of a #commit. */
export type CommitToCheck = Pick<CommitMessage, 'repo' | 'rev' | 'proof'>;
/** What checkSync reads of a #sync. */
export type SyncToCheck = Pick<SyncMessage, 'did' | 'rev' | 'blocks'>;

/**
 * Checks one #commit against the repo's signing key: the signed commit (readSignedCommit), its
 * rev, the signature, and that its MST holds what the ops say (inversion.ts: in `full` mode by
 * undoing them back to `prevData`; in `signatures` mode by looking each up). Throws VerifyError.
 */
export async function checkCommit(message: CommitToCheck, signingKey: string, mode: VerifyMode, keys: SigningKeys): Promise<SignedCommit> {
  const commit = readSignedCommit(message.proof.car, message.proof.commit, message.repo, message.rev);
  checkRev(commit.rev);
  if (!(await signatureVerifies(keys, signingKey, commit))) {
    throw new VerifyError('bad_signature', `the commit's signature does not verify with ${signingKey}`);
  }
  if (mode === 'full') await checkInversion(message.proof, commit.data);
  else checkOpsInTree(message.proof, commit.data);
  return commit;
}

/** Checks a #sync: its CAR's root is a commit of the repo at the frame's rev, signed by its key. */
export async function checkSync(message: SyncToCheck, signingKey: string, keys: SigningKeys): Promise<SignedCommit> {
  let car: CarSlice;
  try {
    car = new CarSlice(message.blocks);
  } catch (err) {
    throw new VerifyError('bad_commit', `the #sync CAR is unreadable: ${(err as Error).message}`);
  }
  const commit = readSignedCommit(car, carRoot(message.blocks), message.did, message.rev);
  checkRev(commit.rev);
  if (!(await signatureVerifies(keys, signingKey, commit))) {
    throw new VerifyError('bad_signature', `the #sync commit's signature does not verify with ${signingKey}`);
  }
  return commit;
}

/**
 * Whether the commit's signature verifies with the key. A key that cannot be imported (not a point
 * on its curve) is the DID document's fault, not the frame's: unknown_key.
 */
async function signatureVerifies(keys: SigningKeys, signingKey: string, commit: SignedCommit): Promise<boolean> {
  try {
    return await keys.verify(signingKey, commit.sig, commit.unsigned);
  } catch (err) {
    throw new VerifyError('unknown_key', `the #atproto key ${signingKey} is unusable: ${(err as Error).message}`);
  }
}

function checkRev(rev: string): void {
  if (!isTid(rev)) throw new VerifyError('bad_commit', `rev ${JSON.stringify(rev)} is not a TID`);
  const aheadMs = tidMicros(rev) / 1000 - Date.now();
  if (aheadMs > FUTURE_REV_TOLERANCE_MS) throw new VerifyError('rev_in_future', `rev ${rev} is ${Math.round(aheadMs / 1000)} s in the future`);
}

/**
 * A check's outcome: the failure, or that it passed, with (in `full` mode) the MST root (`data`)
 * of the signed commit it read and verified, which the next commit's `prevData` must name (the
 * chain, verifier.ts). The check's one decode of the commit gives it: nothing reads it again.
 */
export type Checked = { failure: VerifyError; data?: undefined } | { failure?: undefined; data?: Uint8Array };

/**
 * A passed check's outcome; `full` keeps the commit's MST root: a view into the frame, which the
 * chain does not keep (it keeps the root as a string of its own, verifier.ts).
 */
export function passed(commit: SignedCommit, mode: VerifyMode): Checked {
  if (mode !== 'full') return {};
  try {
    return { data: fromCidLink(commit.data).bytes };
  } catch {
    return {}; // not a CID (a #sync's root is not inverted): nothing to chain the next commit to
  }
}

/** The first root named in a CAR's header (a #sync's CAR has exactly the commit). */
function carRoot(bytes: Uint8Array): Link | undefined {
  try {
    let length = 0;
    let offset = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[offset++];
      if (byte === undefined || shift > 28) return undefined;
      length += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
    }
    const [header] = decodeFirst(bytes.subarray(offset, offset + length));
    const root = header?.roots?.[0];
    return isCidLink(root) ? new Link((root as CidLinkWrapper).bytes) : undefined;
  } catch {
    return undefined;
  }
}
