/**
 * Capped exponential backoff: after `failures` consecutive failures, wait up to
 * min(maxMs, baseMs × 2^min(failures, maxDoublings)). With `random` (full jitter), the wait is
 * a uniform draw below that ceiling, so many clients dropped together do not redial together;
 * without it, the ceiling itself. Pure: randomness is passed in.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** Stop doubling after this many failures (keeps 2^n finite). */
  maxDoublings?: number;
  /** A uniform draw in [0, 1), e.g. Math.random; omit for no jitter. */
  random?: () => number;
}

export function backoffDelay(failures: number, policy: BackoffPolicy): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(failures, policy.maxDoublings ?? 16));
  return policy.random ? Math.round(policy.random() * ceiling) : ceiling;
}
