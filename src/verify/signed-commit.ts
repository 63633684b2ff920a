import { hash } from 'node:crypto';
import { decode, encode, fromBytes, isBytes, isCidLink, type CidLink } from '@atcute/cbor';
import type { Link } from '../atproto/index.ts';
import type { CarSlice } from '../upstream/index.ts';
import { VerifyError } from './failure.ts';

/** A repo commit (https://atproto.com/specs/repository#commit-objects) as read from its block. */
export interface SignedCommit {
  did: string;
  rev: string;
  /** The MST root after this commit. */
  data: CidLink;
  sig: Uint8Array;
  /** The DAG-CBOR bytes the signature covers: the commit without `sig`. */
  unsigned: Uint8Array;
}

/**
 * Finds the signed commit `cid` names in the CAR, checks its bytes against the CID and that it
 * is a v3 commit of `did` at `rev`, and returns it with the bytes its signature covers.
 */
export function readSignedCommit(car: CarSlice, cid: Link | undefined, did: string, rev: string): SignedCommit {
  if (!cid) throw new VerifyError('bad_commit', 'the frame names no commit CID');
  if (!cid.isDagCborSha256) throw new VerifyError('bad_commit', `commit CID ${cid} is not dag-cbor with sha2-256`);
  const block = car.find(cid.bytes);
  if (!block) throw new VerifyError('bad_commit', `the commit block ${cid} is not in the CAR`);
  const digest = hash('sha256', block, 'buffer') as unknown as Buffer;
  if (!digest.equals(cid.digest)) throw new VerifyError('bad_commit', `the commit block does not hash to ${cid}`);
  let commit: Record<string, unknown>;
  try {
    commit = decode(block);
  } catch (err) {
    throw new VerifyError('bad_commit', `the commit block is not DAG-CBOR: ${(err as Error).message}`);
  }
  if (typeof commit !== 'object' || commit === null) throw new VerifyError('bad_commit', 'the commit block is not a map');
  const { sig, ...unsigned } = commit;
  if (unsigned.version !== 3) throw new VerifyError('bad_commit', `commit version ${JSON.stringify(unsigned.version)} (atproto repos are v3)`);
  if (unsigned.did !== did) throw new VerifyError('bad_commit', `the commit is signed for ${JSON.stringify(unsigned.did)}, not ${did}`);
  if (typeof unsigned.rev !== 'string') throw new VerifyError('bad_commit', 'the commit has no rev');
  if (unsigned.rev !== rev) throw new VerifyError('rev_mismatch', `the frame says rev ${rev}, the signed commit ${unsigned.rev}`);
  if (!isCidLink(unsigned.data)) throw new VerifyError('bad_commit', 'the commit has no data root');
  if (!isBytes(sig)) throw new VerifyError('bad_commit', 'the commit has no signature');
  return { did, rev, data: unsigned.data, sig: fromBytes(sig), unsigned: encode(unsigned) };
}
