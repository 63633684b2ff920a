/**
 * Stage backfill: a subscriber's chosen repos, as they are now, before their live events.
 *
 * How it works: `/subscribe?wantedDids=…&backfill=true` (or `"backfill":true` in options_update)
 * gives the subscriber a SubscriberBackfill (subscriber-backfill.ts), which asks the shared
 * SnapshotSource (snapshots.ts) for each wanted repo. The source resolves the DID to its PDS
 * (identity stage), fetches `com.atproto.sync.getRepo` as a stream (fetch-slots.ts: per-host,
 * per-subscriber and total concurrency; repo-fetch.ts: deadline, byte limit, retries with
 * backoff and Retry-After, the PDS's own RepoTakendown/RepoDeactivated/RepoNotFound reasons, no
 * private addresses unless allowed, by the identity stage's endpoint guard), and reads the CAR with @ipld/car's streaming iterator
 * (repo-car.ts: every block hashed against its CID, the commit checked — and its signature when
 * --verify is on, commit-signature.ts — the MST walked with @atcute/mst). A --verify resync
 * (the gateway's resyncRepo) keeps only the repo's signed commit, so it fetches only that
 * (latest-commit.ts: com.atproto.sync.getLatestCommit names it, getBlocks sends that one block,
 * through the same guarded fetch, hashed against its CID and checked as a getRepo's commit is;
 * a PDS that implements neither, 501, is asked for getRepo, of which only the root is kept).
 * Concurrent subscribers
 * of one DID share one fetch; finished snapshots are kept briefly, within a byte bound.
 *
 * Why nothing is lost or repeated: a snapshot remembers the store position its fetch began
 * at. While it is fetched, the repo's events are withheld from the subscriber; then it is sent
 * its records (as `create` events marked `"backfilled":true`, messages.ts), a "complete"
 * message, and the repo's stored events since that position whose rev is newer than the
 * snapshot's; after that, commits at or below the snapshot's rev stay withheld. The live
 * events wait in the store, not in memory. A fetch that fails ends with a `failed` message and
 * a reason, and the withheld events follow it.
 *
 * Files: failure.ts (reasons), repo-fetch.ts, fetch-slots.ts, repo-car.ts, latest-commit.ts, commit-signature.ts
 * (the --verify check, with the verify stage's keys), snapshots.ts, subscriber-backfill.ts,
 * messages.ts, metrics.ts.
 */
export { BackfillFailure, type BackfillFailureReason } from './failure.ts';
export { commitSignatureCheck } from './commit-signature.ts';
export { createBackfillMetrics, type BackfillMetrics } from './metrics.ts';
export type { Outgoing } from './messages.ts';
export { fetchLatestCommit } from './latest-commit.ts';
export { fetchRepo, type FetchLimits } from './repo-fetch.ts';
export { readRepoCar, type CommitCheck, type RepoRecord, type RepoSnapshot, type SignedCommit } from './repo-car.ts';
export { SnapshotSource, type RepoHost, type ResolveRepoHost, type SnapshotSourceOptions } from './snapshots.ts';
export { MAX_BACKFILL_DIDS, SubscriberBackfill, type BackfillContext } from './subscriber-backfill.ts';
