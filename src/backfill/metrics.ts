import { Counter, Histogram, type Registry } from 'prom-client';

export interface BackfillMetrics {
  /** Snapshots handed out: `fetched`, `shared` (joined a running fetch), `cached`, or a failure reason. */
  snapshots: Counter<'result'>;
  fetchSeconds: Histogram;
  /** Per subscriber and repo: `complete` or the failure reason. */
  repos: Counter<'result'>;
  recordsSent: Counter;
}

export function createBackfillMetrics(registry: Registry): BackfillMetrics {
  const registers = [registry];
  return {
    snapshots: new Counter({ name: 'contrail_backfill_snapshots_total', help: 'Repo snapshots for backfill, by result (fetched, shared, cached, or the failure reason)', labelNames: ['result'], registers }),
    fetchSeconds: new Histogram({
      name: 'contrail_backfill_fetch_seconds',
      help: 'Time to resolve, fetch and read one repo for backfill',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    repos: new Counter({ name: 'contrail_backfill_repos_total', help: "Repo backfills ended for a subscriber, by result (complete, or the failure reason)", labelNames: ['result'], registers }),
    recordsSent: new Counter({ name: 'contrail_backfill_records_sent_total', help: 'Backfilled records sent to subscribers', registers }),
  };
}
