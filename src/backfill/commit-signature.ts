import { SigningKeys } from '../verify/index.ts';
import { BackfillFailure } from './failure.ts';
import type { CommitCheck } from './repo-car.ts';

/**
 * With --verify: a snapshot's commit must be signed with the repo's #atproto key (checked with
 * the verify stage's keys). A signature that fails with the key from the cache is checked once
 * more with a freshly fetched DID document, so a rotated key does not fail a valid repo.
 */
export function commitSignatureCheck(keys: SigningKeys, signingKey: string | undefined, refreshKey: () => Promise<string | undefined>): CommitCheck {
  return async (commit) => {
    const verifies = async (key: string | undefined) => key !== undefined && (await keys.verify(key, commit.sig, commit.unsigned).catch(() => false));
    if (await verifies(signingKey)) return;
    const fresh = await refreshKey().catch(() => undefined);
    if (fresh !== signingKey && (await verifies(fresh))) return;
    const key = fresh ?? signingKey;
    throw new BackfillFailure('bad_signature', key ? `the repo's commit is not signed with its key ${key}` : "the repo's DID document has no #atproto signing key");
  };
}
