import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type IdentityMetrics = ReturnType<typeof createIdentityMetrics>;

export function createIdentityMetrics(registry: Registry) {
  const registers = [registry];
  return {
    resolutions: new Counter({
      name: 'contrail_identity_resolutions_total',
      help: 'DID documents fetched, by result (ok, not_found, timeout, unreachable, bad_document, refused_endpoint, overloaded, unsupported_did)',
      labelNames: ['result'],
      registers,
    }),
    resolveSeconds: new Histogram({
      name: 'contrail_identity_resolve_seconds',
      help: 'Time to fetch and read one DID document',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    cacheEntries: new Gauge({ name: 'contrail_identity_cache_entries', help: 'Identities in the LMDB cache', registers }),
    inFlight: new Gauge({ name: 'contrail_identity_in_flight', help: 'DID documents being fetched, or waiting for a slot or for a directory that asked to wait', registers }),
    directoryWaits: new Counter({
      name: 'contrail_identity_directory_waits_total',
      help: 'Waits a DID directory asked for with a 429 or 503 Retry-After (at most 60 s each), by directory (plc, did_web); meanwhile its lookups wait, or fail as unreachable without a fetch',
      labelNames: ['directory'],
      registers,
    }),
  };
}
