import { Counter, Gauge, type Registry } from 'prom-client';

export type VerifyMetrics = ReturnType<typeof createVerifyMetrics>;

export function createVerifyMetrics(registry: Registry) {
  const registers = [registry];
  return {
    verified: new Counter({
      name: 'contrail_verify_passed_total',
      help: 'Commits and #sync frames that passed verification, by message type',
      labelNames: ['type'],
      registers,
    }),
    failures: new Counter({
      name: 'contrail_verify_failures_total',
      help: 'Commits and #sync frames not let through, by reason (bad_signature, bad_inversion, unknown_key, out_of_sync, ...)',
      labelNames: ['reason'],
      registers,
    }),
    keyRefreshes: new Counter({
      name: 'contrail_verify_key_refreshes_total',
      help: 'DID documents fetched again because a signature failed with the cached key',
      registers,
    }),
    resyncs: new Counter({
      name: 'contrail_verify_resyncs_total',
      help: 'Out-of-sync repos whose signed commit was fetched again from their PDS (com.atproto.sync.getLatestCommit and getBlocks, or getRepo from a PDS without them), by result (resynced, failed)',
      labelNames: ['result'],
      registers,
    }),
    resyncsDeferred: new Counter({
      name: 'contrail_verify_resyncs_deferred_total',
      help: 'Resyncs put off because the repo failed again soon after its last resync (one per wait; its commits meanwhile count as out_of_sync)',
      registers,
    }),
    readPauses: new Counter({
      name: 'contrail_verify_read_pauses_total',
      help: 'Times reading from the upstream paused for verification, by what started it (queued: messages waiting; resolving: new repos waiting for their DID documents; held_bytes: bytes held for repos)',
      labelNames: ['reason'],
      registers,
    }),
    duplicates: new Counter({
      name: 'contrail_verify_duplicates_total',
      help: 'Upstream frames seen again after a reconnect and skipped',
      registers,
    }),
    heldBytes: new Gauge({ name: 'contrail_verify_held_bytes', help: 'Bytes of commits held while their repo key is resolved', registers }),
    heldRepos: new Gauge({ name: 'contrail_verify_held_repos', help: 'Repos whose commits are held while their key is resolved', registers }),
    outOfSync: new Gauge({ name: 'contrail_verify_out_of_sync_repos', help: 'Repos out of sync after a failed commit, until a valid #sync or a resync', registers }),
    queued: new Gauge({ name: 'contrail_verify_queued', help: 'Upstream messages waiting for verification', registers }),
  };
}

/**
 * The metrics of a Verifier whose run ended (Verifier.ended): its gauges read 0, as on a node
 * that verifies nothing, and the ones it is given instead are in no registry, so what it does
 * later (a resolution or a resync ending) moves none that is shown. Counters count on.
 */
export function endedRunMetrics(metrics: VerifyMetrics): VerifyMetrics {
  const shown = [metrics.heldBytes, metrics.heldRepos, metrics.outOfSync, metrics.queued];
  for (const gauge of shown) gauge.set(0);
  const unshown = () => new Gauge({ name: 'contrail_verify_ended_run', help: 'a gauge of a Verifier whose run ended: in no registry', registers: [] });
  return { ...metrics, heldBytes: unshown(), heldRepos: unshown(), outOfSync: unshown(), queued: unshown() };
}
