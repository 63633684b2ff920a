import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SnapshotSource, createBackfillMetrics, type FetchLimits } from '../../src/backfill/index.ts';

/** The backfill tests' fetch limits: 1 MiB in 2 s, three attempts, 20 ms apart at first, a PDS on 127.0.0.1 allowed. */
export const FETCH_LIMITS: FetchLimits = { maxBytes: 1024 * 1024, timeoutMs: 2_000, attempts: 3, backoffMs: 20, maxRetryAfterMs: 5_000, allowPrivateEndpoints: true };

/**
 * A SnapshotSource whose DIDs all resolve to the PDS at `pdsUrl`: FETCH_LIMITS, two fetches per
 * host and four in all, a 1 MiB cache kept a minute, a tip of 0, a silent log and metrics of its
 * own; `overrides` replace any of these.
 */
export function snapshotSource(pdsUrl: string, overrides: Partial<ConstructorParameters<typeof SnapshotSource>[0]> = {}): SnapshotSource {
  return new SnapshotSource({
    resolve: async () => ({ pdsUrl }),
    limits: FETCH_LIMITS,
    perHost: 2,
    concurrency: 4,
    cacheBytes: 1024 * 1024,
    cacheTtlMs: 60_000,
    tip: () => 0,
    logger: pino({ level: 'silent' }),
    metrics: createBackfillMetrics(new Registry()),
    ...overrides,
  });
}
