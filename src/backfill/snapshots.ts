import type { Logger } from 'pino';
import { IdentityError } from '../identity/index.ts';
import { BackfillFailure } from './failure.ts';
import { FetchSlots } from './fetch-slots.ts';
import type { BackfillMetrics } from './metrics.ts';
import { fetchRepo, type FetchLimits } from './repo-fetch.ts';
import { readRepoCar, type CommitCheck, type RepoSnapshot } from './repo-car.ts';

/** Where a repo lives and how to check its commits: what identity resolution gives backfill. */
export interface RepoHost {
  pdsUrl: string;
  /** Checks a fetched commit's signature (when --verify is on); absent = not checked. */
  checkCommit?: CommitCheck;
}

/** DID → its PDS. Throws (any error) when the DID cannot be resolved; the message is reported. */
export type ResolveRepoHost = (did: string) => Promise<RepoHost>;

/** A snapshot and the store position when its fetch began: every later change has a higher time_us. */
export interface TimedSnapshot extends RepoSnapshot {
  since: number;
}

export interface SnapshotSourceOptions {
  resolve: ResolveRepoHost;
  limits: FetchLimits;
  perHost: number;
  concurrency: number;
  /** Recent snapshots kept for reuse, by total size and age. */
  cacheBytes: number;
  cacheTtlMs: number;
  /** The store's newest time_us now (the position a fetch starts at). */
  tip: () => number;
  logger: Logger;
  metrics: BackfillMetrics;
}

/**
 * Fetches one subscriber's requests may run at once: half of `--backfill-concurrency` (at least
 * one), so one subscriber never holds more than half the slots and any other always finds some.
 */
export function fetchesPerSubscriber(concurrency: number): number {
  return Math.max(1, Math.floor(concurrency / 2));
}

interface Flight {
  promise: Promise<TimedSnapshot>;
  waiters: number;
  abort: AbortController;
}

/**
 * Snapshots of repos, shared: subscribers asking for the same DID while its fetch runs wait on
 * that one fetch (it is cancelled when the last of them leaves), and a finished snapshot is
 * reused for `cacheTtlMs` within a byte bound. Reuse is exact, not approximate: a snapshot
 * carries the store position its fetch began at, and each subscriber catches up from there
 * (subscriber-backfill.ts), so an older snapshot only means a longer catch-up.
 */
export class SnapshotSource {
  readonly #flights = new Map<string, Flight>();
  /** Insertion order is age order: the oldest is evicted first. */
  readonly #cache = new Map<string, { snapshot: TimedSnapshot; atMs: number }>();
  #cachedBytes = 0;
  readonly #slots: FetchSlots;

  constructor(readonly options: SnapshotSourceOptions) {
    this.#slots = new FetchSlots(options.perHost, fetchesPerSubscriber(options.concurrency), options.concurrency);
  }

  /**
   * The DID's snapshot for subscriber `asker` (a fetch it starts counts against its share of
   * the slots, whoever joins it); `signal` says this waiter left (the fetch stops when all have).
   */
  async get(did: string, asker: number, signal: AbortSignal): Promise<TimedSnapshot> {
    const cached = this.#cache.get(did);
    if (cached && Date.now() - cached.atMs <= this.options.cacheTtlMs) {
      this.options.metrics.snapshots.inc({ result: 'cached' });
      return cached.snapshot;
    }
    if (cached) this.#forget(did);
    let flight = this.#flights.get(did);
    if (flight) {
      this.options.metrics.snapshots.inc({ result: 'shared' });
    } else {
      const abort = new AbortController();
      const started: Flight = { promise: this.#fetch(did, asker, abort.signal), waiters: 0, abort };
      flight = started;
      this.#flights.set(did, started);
      started.promise.then(
        (snapshot) => this.#remember(snapshot),
        () => {},
      );
      started.promise
        .finally(() => {
          if (this.#flights.get(did) === started) this.#flights.delete(did);
        })
        .catch(() => {});
    }
    const joined = flight;
    joined.waiters++;
    return new Promise((resolve, reject) => {
      let waiting = true;
      const stopWaiting = () => {
        waiting = false;
        signal.removeEventListener('abort', leave);
        return --joined.waiters;
      };
      const leave = () => {
        if (waiting && stopWaiting() === 0) {
          // Cancelled, though it may take a while to settle (resolving the DID, waiting for a
          // host slot): whoever asks for the repo from now on starts a fetch of its own.
          joined.abort.abort();
          if (this.#flights.get(did) === joined) this.#flights.delete(did);
        }
        reject(new BackfillFailure('fetch_failed', 'cancelled: the subscriber no longer wants this repo'));
      };
      if (signal.aborted) return leave();
      signal.addEventListener('abort', leave, { once: true });
      joined.promise.then(
        (snapshot) => waiting && (stopWaiting(), resolve(snapshot)),
        (err) => waiting && (stopWaiting(), reject(err)),
      );
    });
  }

  async #fetch(did: string, asker: number, signal: AbortSignal): Promise<TimedSnapshot> {
    const { resolve, limits, logger, metrics, tip } = this.options;
    const since = tip();
    const startedMs = performance.now();
    try {
      let host: RepoHost;
      try {
        host = await resolve(did);
      } catch (err) {
        // A did:web whose own host is a private address is refused by the same guard as such a PDS, and said the same way.
        const refused = err instanceof IdentityError && err.reason === 'refused_endpoint';
        throw new BackfillFailure(refused ? 'private_endpoint' : 'identity_unavailable', `could not find the PDS of ${did}: ${(err as Error).message}`);
      }
      const hostKey = URL.canParse(host.pdsUrl) ? new URL(host.pdsUrl).host : host.pdsUrl;
      const snapshot = await this.#slots.run(hostKey, asker, () =>
        fetchRepo(host.pdsUrl, did, limits, (chunks) => readRepoCar(chunks, did, limits.maxBytes, host.checkCommit), signal),
        signal,
      );
      metrics.snapshots.inc({ result: 'fetched' });
      metrics.fetchSeconds.observe((performance.now() - startedMs) / 1000);
      if (snapshot.skipped > 0) logger.warn({ did, skipped: snapshot.skipped }, 'backfill left out records that break the atproto data model');
      logger.info({ did, rev: snapshot.rev, records: snapshot.records.length, ms: Math.round(performance.now() - startedMs) }, 'backfill snapshot fetched');
      return { ...snapshot, since };
    } catch (err) {
      const failure = err instanceof BackfillFailure ? err : new BackfillFailure('fetch_failed', (err as Error).message);
      metrics.snapshots.inc({ result: failure.reason });
      logger.info({ did, reason: failure.reason, message: failure.message }, 'backfill snapshot failed');
      throw failure;
    }
  }

  #remember(snapshot: TimedSnapshot): void {
    const { cacheBytes } = this.options;
    if (snapshot.bytes > cacheBytes / 4) return; // one giant repo must not flush everything else
    this.#forget(snapshot.did);
    this.#cache.set(snapshot.did, { snapshot, atMs: Date.now() });
    this.#cachedBytes += snapshot.bytes;
    for (const did of this.#cache.keys()) {
      if (this.#cachedBytes <= cacheBytes) break;
      this.#forget(did);
    }
  }

  #forget(did: string): void {
    const entry = this.#cache.get(did);
    if (!entry) return;
    this.#cache.delete(did);
    this.#cachedBytes -= entry.snapshot.bytes;
  }
}
