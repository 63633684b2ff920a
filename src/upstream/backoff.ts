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

/** Retry-After as delay-seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function retryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function backoffDelay(failures: number, policy: BackoffPolicy): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(failures, policy.maxDoublings ?? 16));
  return policy.random ? Math.round(policy.random() * ceiling) : ceiling;
}
