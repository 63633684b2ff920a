import type { Logger } from 'pino';
import type { Entry } from '../events/index.ts';
import { DamagedBlockError, UnreadableBufferError, type EventStore } from '../store/index.ts';
import { BackfillFailure } from './failure.ts';
import { backfillCompleteJson, backfillFailedJson, backfilledRecord, commitRev, type Outgoing } from './messages.ts';
import type { BackfillMetrics } from './metrics.ts';
import type { SnapshotSource, TimedSnapshot } from './snapshots.ts';

/** Repos one subscriber may have backfilled (and followed) at a time. */
export const MAX_BACKFILL_DIDS = 100;

/** What every subscriber's backfill shares. */
export interface BackfillContext {
  snapshots: SnapshotSource;
  store: EventStore;
  metrics: BackfillMetrics;
  logger: Logger;
}

/** Its live events are withheld (the first at firstWithheld); the catch-up re-reads them from the store. */
type Fetching = { phase: 'fetching'; requestedAt: number; abort: AbortController; firstWithheld?: number };

type RepoState =
  | Fetching
  /** Snapshot sent: commit events at or below its rev are already reflected in it. */
  | { phase: 'done'; rev: string }
  /** No snapshot: live events flow as if no backfill had been asked for. */
  | { phase: 'failed' };

type OutboxItem = { did: string } & ({ snapshot: TimedSnapshot; next: number; sent: number } | { ready: Outgoing[] });

const CATCH_UP_BATCH = 512;
const CATCH_UP_SCAN = 50_000;

/**
 * One subscriber's repo backfills. The hub asks it two things: whether a stored event is
 * withheld from the normal stream (`withholds`), and what to send before continuing from the
 * subscriber's position (`peek`/`consume`).
 *
 * How no change is lost or repeated: while a repo's snapshot is fetched, its events are
 * withheld from the subscriber (its position moves on past them). When the snapshot arrives,
 * the outbox gets its records, the "complete" message, then a catch-up: the repo's stored
 * events from the store position where the fetch began up to the subscriber's position, keeping
 * commits newer than the snapshot's rev (and identity/account events after the request). From
 * then on its commits at or below the snapshot's rev are withheld. The store, not memory, holds
 * the live events meanwhile, so a long fetch costs nothing per subscriber.
 */
export class SubscriberBackfill {
  readonly #repos = new Map<string, RepoState>();
  readonly #outbox: OutboxItem[] = [];
  /** Built for the next send; consumed front first. `#readyDids[i]` is the repo of `#ready[i]`. */
  #ready: Outgoing[] = [];
  #readyDids: string[] = [];

  constructor(
    readonly context: BackfillContext,
    /** Whether the subscriber's current filter wants an event (DIDs, collections, size). */
    readonly wants: (entry: Entry) => boolean,
    /** Called when the outbox gets something while the subscriber may be idle at the tip. */
    readonly onOutput: () => void,
    /** The subscriber's position in the stream: everything up to it was examined. */
    readonly position: () => number,
    readonly subscriberId: number,
  ) {}

  /**
   * Starts a backfill for each DID not already backfilled or being backfilled on this connection;
   * one whose backfill failed is tried again (asking again is how a client retries).
   */
  request(dids: Iterable<string>, position: number): void {
    for (const did of dids) {
      const phase = this.#repos.get(did)?.phase;
      if (phase === 'fetching' || phase === 'done') continue;
      const fetching: Fetching = { phase: 'fetching', requestedAt: position, abort: new AbortController() };
      this.#repos.set(did, fetching);
      // Each outcome is this fetch's only while the repo's state is still this one: a fetch that
      // was cancelled (the repo dropped) ends a microtask later, maybe after the repo was asked for again.
      this.context.snapshots.get(did, this.subscriberId, fetching.abort.signal).then(
        (snapshot) => this.#repos.get(did) === fetching && this.#arrived(did, fetching, snapshot),
        (err) => this.#repos.get(did) === fetching && this.#failed(did, fetching, err instanceof BackfillFailure ? err : new BackfillFailure('fetch_failed', (err as Error).message)),
      );
    }
  }

  /**
   * After an options_update (the subscriber's filter already changed): forgets repos no longer
   * wanted — their fetches are left and what they have not sent yet is dropped (an empty filter
   * wants every DID) — and drops events made ready to send that the new filter does not want.
   */
  retain(dids: ReadonlySet<string>): void {
    const everyDid = dids.size === 0;
    if (!everyDid) {
      for (const [did, state] of this.#repos) {
        if (dids.has(did)) continue;
        if (state.phase === 'fetching') state.abort.abort();
        this.#repos.delete(did);
      }
      const kept = this.#outbox.filter((item) => dids.has(item.did));
      this.#outbox.splice(0, this.#outbox.length, ...kept);
    }
    const keep = this.#ready.map((out, i) => (everyDid || dids.has(this.#readyDids[i]!)) && (Buffer.isBuffer(out) || this.wants(out)));
    this.#ready = this.#ready.filter((_, i) => keep[i]);
    this.#readyDids = this.#readyDids.filter((_, i) => keep[i]);
  }

  withholds(entry: Entry): boolean {
    const state = this.#repos.get(entry.did);
    if (!state || state.phase === 'failed') return false;
    if (state.phase === 'fetching') {
      state.firstWithheld = Math.min(state.firstWithheld ?? Infinity, entry.timeUs);
      return true;
    }
    if (entry.kind !== 'commit') return false;
    const rev = commitRev(entry.json);
    return rev !== undefined && rev <= state.rev;
  }

  get hasOutput(): boolean {
    return this.#ready.length > 0 || this.#outbox.length > 0;
  }

  /** Events the subscriber's position passed are still owed to it: a repo is fetched (its events withheld), or output waits. */
  get owesEvents(): boolean {
    if (this.hasOutput) return true;
    for (const state of this.#repos.values()) if (state.phase === 'fetching') return true;
    return false;
  }

  /**
   * Up to `max` messages to send next (what was peeked and not sent first); records and
   * messages made now are stamped with `position` as their time_us.
   */
  peek(position: number, max: number): readonly Outgoing[] {
    if (this.#ready.length > 0) return this.#ready;
    while (this.#ready.length < max) {
      const item = this.#outbox[0];
      if (item === undefined) break;
      if ('ready' in item) {
        // The filter is asked again as they are sent: an options_update may have come since the catch-up was read.
        for (const out of item.ready) {
          if (!Buffer.isBuffer(out) && !this.wants(out)) continue;
          this.#ready.push(out);
          this.#readyDids.push(item.did);
        }
        this.#outbox.shift();
        continue;
      }
      const { snapshot } = item;
      const records = snapshot.records;
      while (this.#ready.length < max) {
        const record = records[item.next];
        if (record === undefined) break;
        item.next++;
        const event = backfilledRecord(snapshot.did, position, snapshot.rev, record);
        if (!this.wants(event)) continue;
        this.#ready.push(event);
        this.#readyDids.push(item.did);
        item.sent++;
      }
      if (item.next < records.length) break;
      this.#outbox.shift();
      this.#ready.push(backfillCompleteJson(snapshot.did, position, snapshot.rev, item.sent));
      this.#readyDids.push(item.did);
      this.context.metrics.recordsSent.inc(item.sent);
    }
    return this.#ready;
  }

  /** The first `count` peeked messages were sent. */
  consume(count: number): void {
    this.#ready = this.#ready.slice(count);
    this.#readyDids = this.#readyDids.slice(count);
  }

  /** The subscriber is gone: its fetches are left, and their outcomes, finding no state of theirs, are dropped. */
  close(): void {
    for (const state of this.#repos.values()) if (state.phase === 'fetching') state.abort.abort();
    this.#repos.clear();
    this.#outbox.length = 0;
    this.#ready = [];
    this.#readyDids = [];
  }

  #arrived(did: string, state: Fetching, snapshot: TimedSnapshot): void {
    const { store, metrics } = this.context;
    if (snapshot.since < store.trimmedUpTo || this.#withheldTrimmed(state)) {
      this.#failed(did, state, new BackfillFailure('buffer_trimmed', 'the buffer no longer holds the live events since the snapshot was taken'));
      return;
    }
    const catchUp = this.#catchUp(did, snapshot, state.requestedAt);
    if (catchUp.unreadable) {
      this.#failed(did, state, new BackfillFailure('buffer_unreadable', `${catchUp.unreadable.message}; the repo's events since then cannot be sent`));
      return;
    }
    if (catchUp.damaged) {
      this.#failed(did, state, new BackfillFailure('buffer_damaged', `${catchUp.damaged.message}; the repo's events among them cannot be sent`));
      return;
    }
    this.#repos.set(did, { phase: 'done', rev: snapshot.rev });
    this.#outbox.push({ did, snapshot, next: 0, sent: 0 }, { did, ready: catchUp.entries });
    metrics.repos.inc({ result: 'complete' });
    this.onOutput();
  }

  /**
   * The repo's stored events after the snapshot's start (or the request, if earlier: events
   * withheld since then that the snapshot may not reflect), up to the subscriber's position
   * (which does not move while the outbox has something: the hub sends the outbox first).
   * Read through the buffer's DID index. A block that cannot be read (damaged on disk) is read
   * past, and the first such block is returned as `damaged`: the repo's backfill is not whole. A
   * read that fails otherwise (LMDB refuses a damaged page) ends the catch-up there, as `unreadable`.
   */
  #catchUp(did: string, snapshot: TimedSnapshot, requestedAt: number): { entries: Entry[]; damaged?: DamagedBlockError; unreadable?: UnreadableBufferError } {
    const { store } = this.context;
    const keep = (entry: Entry) => {
      if (entry.did !== did || !this.wants(entry)) return false;
      if (entry.kind !== 'commit') return entry.timeUs > requestedAt;
      const rev = commitRev(entry.json);
      return rev === undefined || rev > snapshot.rev;
    };
    const until = this.position();
    const select = { dids: new Set([did]), collections: new Set<string>(), prefixes: [] };
    const found: Entry[] = [];
    let damaged: DamagedBlockError | undefined;
    for (let position = Math.min(snapshot.since, requestedAt); position < until; ) {
      let read: ReturnType<EventStore['readAfter']>;
      try {
        read = store.readAfter(position, { maxEntries: CATCH_UP_BATCH, maxScanned: CATCH_UP_SCAN, filter: keep, select });
      } catch (err) {
        if (err instanceof UnreadableBufferError) return { entries: found, ...(damaged ? { damaged } : {}), unreadable: err };
        // The read starts inside or before the block (reads end before one they reach later), so its end is ahead.
        if (!(err instanceof DamagedBlockError) || err.end <= position) throw err;
        damaged ??= err;
        position = err.end;
        continue;
      }
      for (const entry of read.entries) if (entry.timeUs <= until) found.push(entry);
      if (read.position === position) break;
      position = read.position;
    }
    return damaged ? { entries: found, damaged } : { entries: found };
  }

  /** Retention removed events withheld from the subscriber during the fetch: the catch-up can no longer send them. */
  #withheldTrimmed(state: Fetching): boolean {
    return state.firstWithheld !== undefined && state.firstWithheld <= this.context.store.trimmedUpTo;
  }

  #failed(did: string, state: Fetching, failure: BackfillFailure): void {
    // Its withheld live events come back through the catch-up, from the request on.
    const catchUp = this.#catchUp(did, { since: state.requestedAt, rev: '' } as TimedSnapshot, state.requestedAt);
    if (failure.reason !== 'buffer_trimmed' && this.#withheldTrimmed(state)) {
      failure = new BackfillFailure('buffer_trimmed', `${failure.message}; and the buffer no longer holds the live events withheld meanwhile`);
    } else if (failure.reason !== 'buffer_damaged' && catchUp.damaged) {
      failure = new BackfillFailure('buffer_damaged', `${failure.message}; and ${catchUp.damaged.message}; the repo's events among them cannot be sent`);
    } else if (failure.reason !== 'buffer_unreadable' && catchUp.unreadable) {
      failure = new BackfillFailure('buffer_unreadable', `${failure.message}; and ${catchUp.unreadable.message}; the repo's events withheld since then cannot be sent`);
    }
    this.#repos.set(did, { phase: 'failed' });
    this.context.metrics.repos.inc({ result: failure.reason });
    this.context.logger.info({ subscriber: this.subscriberId, did, reason: failure.reason, message: failure.message }, 'backfill of a repo failed');
    this.#outbox.push({ did, ready: [backfillFailedJson(did, this.position(), failure), ...catchUp.entries] });
    this.onOutput();
  }
}
