/**
 * Package store is the replay buffer: every event, durable in LMDB, keyed by its time_us.
 *
 * How it works: one LMDB environment in the data dir holds four databases — `events`
 * (ordered time_us key → header + JSON, see codec.ts), `seqs` (seq → time_us), `revs` (DID →
 * last stored commit rev) and `meta` (format version, upstream cursor, last issued time_us and
 * seq, retention floor). The Ingester is the only writer: it groups whatever frames arrived
 * while the previous commit was in flight into one transaction that also carries the upstream
 * seq and the last time_us. So the saved cursor never runs ahead of the events it covers, and
 * after a crash the reader resumes from it and the clock from above the newest stored event.
 *
 * The seq contract (what other stages may rely on): every stored event has a `seq` — unique,
 * strictly increasing in time_us order, never reused, also across restarts and after retention
 * removed everything (the last one is saved with each commit) — stored with the event and
 * resolvable to its time_us in O(log n) (`timeUsAtSeq`, for seq cursors). `commit` assigns the
 * next seqs; `commitAssigned` writes events whose time_us and seq were assigned elsewhere (a
 * replication leader), as given, after checking that both still increase.
 *
 * Visible only after durable: committed batches are appended to the HotLog and announced to
 * listeners only once LMDB has committed them. A commit survives a killed process (it is in the
 * OS page cache); fsync is off by default — the buffer is synced every second in the background,
 * and run-marker.ts sets aside a buffer a machine crash may have torn — and `--fsync` flushes
 * every commit as it happens instead (see the README's Design section). Readers ask for
 * "events after my position": from the hot log when it covers the position, otherwise from
 * LMDB, with an optional metadata filter so replay never parses JSON.
 *
 * Retention (retention.ts) trims the oldest events in small transactions; `trimmedUpTo`
 * remembers where, so a reader whose position falls below it knows it has lost events.
 *
 * Files:
 *   event-store.ts  EventStore: the LMDB environment, commits, readAfter, span, trimming
 *   codec.ts        the stored-entry layout: header for filters, then the event's JSON
 *   hot-log.ts      HotLog: the newest committed events in memory, bounded by bytes
 *   ingest.ts       Ingester: the single writer (dedup by seq and rev, group commit, backpressure)
 *   ingest-filter.ts  collectionKeeper: --ingest-collections, the commit ops a small instance keeps
 *   retention.ts    Retention: trims by age and size in the background
 *   run-marker.ts   the marker that tells a killed process from a machine crash
 *   metrics.ts      the store and ingest Prometheus metrics
 */
export {
  EventStore,
  type Batch,
  type EventFilter,
  type EventStoreOptions,
  type ReadOptions,
  type ReadResult,
  type StoreSpan,
  type UpstreamCursor,
} from './event-store.ts';
export type { Selection } from './sealed-reads.ts';
export { Ingester, type IngesterOptions } from './ingest.ts';
export { collectionKeeper } from './ingest-filter.ts';
export { Retention, type RetentionOptions } from './retention.ts';
export { createStoreMetrics, type StoreMetrics } from './metrics.ts';
