/**
 * Why a repo's backfill ended without a snapshot. The reason is a stable code for programs; the
 * message says it for people (both reach the subscriber, see messages.ts).
 */
export type BackfillFailureReason =
  | 'repo_not_found'
  | 'repo_takendown'
  | 'repo_suspended'
  | 'repo_deactivated'
  | 'identity_unavailable'
  | 'private_endpoint'
  | 'too_large'
  | 'timeout'
  | 'fetch_failed'
  | 'bad_car'
  | 'missing_block'
  | 'cid_mismatch'
  | 'bad_commit'
  | 'bad_signature'
  | 'bad_mst'
  | 'buffer_trimmed'
  | 'buffer_damaged'
  | 'buffer_unreadable';

export class BackfillFailure extends Error {
  constructor(
    readonly reason: BackfillFailureReason,
    message: string,
  ) {
    super(message);
  }
}
