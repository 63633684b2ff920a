import type { Logger } from 'pino';
import { FUTURE_REV_TOLERANCE_MS, isTid, tidMicros } from '../atproto/index.ts';
import { buildEvents, type CursorClock, type Entry } from '../events/index.ts';
import { DropLog, backoffDelay, redactUrl, type DropReporter, type UpstreamMessage } from '../upstream/index.ts';
import type { Batch, EventStore, UpstreamCursor } from './event-store.ts';
import type { StoreMetrics } from './metrics.ts';
import { orUnreadable, UnreadableBufferError } from './read-errors.ts';

export interface IngesterOptions {
  store: EventStore;
  clock: CursorClock;
  /**
   * The configured upstream URL; a stored cursor from another upstream is not reused. Saved with
   * its credentials redacted (they have no business in the data dir), and compared that way.
   */
  upstreamUrl: string;
  logger: Logger;
  metrics: StoreMetrics;
  /** Where records that cannot become events are reported, beside the reader's drops. */
  drops: DropReporter;
  /** Called with true when the write queue is full (pause reading) and false once it drains. */
  onBackpressure: (paused: boolean) => void;
  /** Called with false (and the error) when a commit fails and true once commits succeed again. */
  onStoreHealth?: (healthy: boolean, error?: string) => void;
  /**
   * The lowest seq an earlier stage still holds back (verification waiting for a repo's key;
   * later seqs go ahead of it): the saved and the resume cursor stay below it, so a crash or a
   * reconnect reads it again.
   */
  heldBelow?: () => number | undefined;
  /**
   * The repos an earlier stage holds messages of, each with its lowest held seq: saved with the
   * cursor, so that a restart, which reads again from below them, stores their messages and
   * nothing else it had already handled (see UpstreamCursor.through).
   */
  heldRepos?: () => [string, number][];
  maxPendingBytes?: number;
  retryDelayMs?: number;
  /** Commit ops kept in the buffer (`--ingest-collections`); undefined keeps all. */
  keepCollection?: (collection: string) => boolean;
  /**
   * Where a batch goes: the local store (default), or — in a cluster — the event stream, which
   * resolves once the batch is back in the local store through the node's follower.
   */
  commit?: (batch: Batch) => Promise<void>;
}

/** Events one turn's reads must bring for the commit to wait for the next turn's (see #whileBacklogged). */
const BACKLOG_TURN_EVENTS = 32;
/** Turns, and events, one backlogged commit gathers at most. */
const BACKLOG_TURNS = 4;
const BACKLOG_EVENTS = 1_024;

/**
 * Held repos saved with the cursor at most; with more, only the resume seq is saved (a restart then
 * stores again what it reads above it that has no rev to tell it was stored, such as #identity and
 * #account events: nothing is lost). The window rides every commit's cursor (and, in a cluster,
 * every batch's last stream message), so its size is paid per commit: 256 repos are ~10 KB and
 * cost no measurable CPU; 10,000 were ~420 KB and ~6 ms per commit (bench/held-cursor.ts).
 */
const MAX_SAVED_HELD_REPOS = 256;

/** DIDs per generation of the Ingester's remembered revs (two generations: ~7 MB at most). */
const REMEMBERED_REVS = 32_768;

/**
 * The single writer. Accepts upstream messages in order, discards what is already stored
 * (seq at or below the watermark, a commit rev not newer than the DID's stored rev), builds
 * events, and group-commits: everything that arrives while a commit is in flight goes into
 * the next transaction, together with the seq it completes (catching up, with later turns'
 * reads: #whileBacklogged).
 */
export class Ingester {
  readonly #options: Required<IngesterOptions>;
  #watermark: number | undefined;
  #pending: Entry[] = [];
  #pendingRevs = new Map<string, string>();
  /** The revs of the batch being committed (or retried): not in the store yet, no longer pending. */
  #committingRevs = new Map<string, string>();
  /**
   * Revs this Ingester committed or read from the store ('' for none), the newer of two
   * generations of REMEMBERED_REVS DIDs: busy DIDs commit again and again, and reading the store
   * costs more than the rest of a commit's check. This Ingester is the store's only writer of revs
   * while it runs (a cluster starts a new one with each term), so they stay true.
   */
  #rememberedRevs = new Map<string, string>();
  #olderRevs = new Map<string, string>();
  #pendingSeq: number | undefined;
  #pendingBytes = 0;
  #committing: Promise<void> | undefined;
  #paused = false;
  /** A backlogged commit is waiting for later turns' reads (#whileBacklogged): none is due this turn. */
  #gathering = false;
  /** Events in the last batch committed; undefined before the first (see #whileBacklogged). */
  #lastBatchEvents: number | undefined;
  #abandoned = false;
  /** The newest upstream time read that is a date (ms): the lag is measured from it. A frame's time is the relay's string. */
  #lastUpstreamMs: number | undefined;
  /** #info frames, logged the first of each kind, then once per interval: a relay may send them as fast as any frame. */
  readonly #infoLog: DropLog<'OutdatedCursor' | 'other'>;
  /**
   * After a restart that resumed below held messages: frames up to `through` were handled before
   * it, except those of the repos held then, from their lowest held seq on.
   */
  #reread: { through: number; held: Map<string, number> } | undefined;

  constructor(options: IngesterOptions) {
    // keepCollection after the spread: the gateway passes undefined for "keep all".
    this.#options = {
      maxPendingBytes: 64 * 1024 * 1024,
      retryDelayMs: 1_000,
      onStoreHealth: () => {},
      heldBelow: () => undefined,
      heldRepos: () => [],
      ...options,
      keepCollection: options.keepCollection ?? (() => true),
      // An option passed as undefined keeps its default.
      commit: options.commit ?? ((batch) => options.store.commit(batch)),
    };
    this.#infoLog = new DropLog((fields, kind) => {
      if (kind === 'OutdatedCursor') options.logger.warn(fields, 'upstream says our cursor is older than its backfill window: events were missed');
      else options.logger.info(fields, 'upstream info');
    });
    // Committing to the store itself (not through a cluster's stream): its seal steps let a turn's commit go first.
    if (!options.commit) options.store.giveWayTo(() => this.commitDue);
    const saved = options.store.upstreamCursor;
    if (saved && redactUrl(saved.url) === redactUrl(options.upstreamUrl)) {
      this.#watermark = saved.seq;
      if (saved.through !== undefined && saved.through > saved.seq) this.#reread = { through: saved.through, held: new Map(saved.held) };
    } else if (saved) {
      options.logger.warn(
        { savedUrl: redactUrl(saved.url), savedSeq: saved.seq, upstream: redactUrl(options.upstreamUrl) },
        'the saved upstream cursor belongs to another upstream; starting live from this one',
      );
    }
  }

  /** The seq to resume after: the newest accepted, committed or not (pending events will be). */
  resumeCursor(): number | undefined {
    return this.#belowHeld(this.#watermark);
  }

  /**
   * `released`: the message was held by an earlier stage while later seqs went ahead, so it is
   * new although its seq is at or below the watermark.
   */
  handle(message: UpstreamMessage, released = false): void {
    const { metrics } = this.#options;
    switch (message.type) {
      case 'error':
        if (message.error === 'FutureCursor') {
          this.#watermark = undefined;
          this.#reread = undefined;
        }
        return;
      case 'info':
        // The name is the relay's: logged (cut), never a reason of its own.
        this.#infoLog.record(message.name === 'OutdatedCursor' ? 'OutdatedCursor' : 'other', message.message ?? '', { name: message.name });
        return;
      default: // events (#sync too): stored below
    }
    if (released) {
      this.#pendingSeq ??= this.#watermark ?? message.seq; // a batch is committed with the seq it completes
    } else if (this.#watermark !== undefined && message.seq <= this.#watermark) {
      metrics.skipped.inc({ reason: 'duplicate_seq' });
      return;
    } else {
      this.#watermark = message.seq;
      this.#pendingSeq = message.seq;
    }
    if (this.#reread && !this.#newOnReread(message)) {
      metrics.skipped.inc({ reason: 'duplicate_seq' });
      this.#scheduleCommit();
      return;
    }
    const upstreamMs = Date.parse(message.time);
    if (Number.isFinite(upstreamMs)) this.#lastUpstreamMs = upstreamMs;
    if (message.type !== 'commit' || this.#isNewRev(message.repo, message.rev)) {
      this.#accept(message);
    } else {
      metrics.skipped.inc({ reason: 'stale_rev' });
    }
    this.#scheduleCommit();
  }

  /**
   * Resolves true once everything handed in so far is committed — or false if commits are
   * still failing after timeoutMs, in which case the Ingester gives up retrying (shutdown):
   * the saved cursor is still behind the uncommitted events, so a restart reads them again.
   */
  async flush(timeoutMs = Infinity): Promise<boolean> {
    const drained = (async () => {
      while (!this.#abandoned && (this.#committing || this.#pendingSeq !== undefined)) {
        this.#scheduleCommit();
        await this.#committing;
      }
      return !this.#abandoned;
    })();
    if (timeoutMs === Infinity) return drained;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const flushed = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    if (!flushed) this.#abandoned = true;
    return flushed;
  }

  /**
   * Events were read that are not yet handed to the store: a commit is due in this turn of the
   * event loop (the subscriber hub lets it run before the turn's replay sends).
   */
  get commitDue(): boolean {
    return this.#pending.length > 0 && !this.#gathering;
  }

  /** Gives up on everything not committed yet (a cluster leader that lost its term): nothing more is committed. */
  abandon(): void {
    this.#abandoned = true;
  }

  /**
   * The run is over (the gateway stops, or a cluster node's term ended) and nothing more is
   * committed: its gauges say so, no lag measured, nothing pending, not paused, rather than keep
   * the run's last values on a node that no longer reads the relay.
   */
  ended(): void {
    this.abandon();
    const { metrics } = this.#options;
    metrics.upstreamLag.set(NaN);
    metrics.pendingBytes.set(0);
    metrics.ingestPaused.set(0);
  }

  /**
   * Read again after a restart below held messages: new only if its repo was held then (from its
   * lowest held seq on), or it is above what was handled. Each repo's messages come in order, so
   * once one is taken, that repo's earlier ones are done.
   */
  #newOnReread(message: Extract<UpstreamMessage, { seq: number }>): boolean {
    const reread = this.#reread!;
    if (message.seq > reread.through) {
      // Read past all of it, and nothing of it is held again: done with it.
      if (this.#belowHeld(this.#watermark)! >= reread.through) this.#reread = undefined;
      return true;
    }
    const did = message.type === 'commit' ? message.repo : message.did;
    const heldFrom = reread.held.get(did);
    if (heldFrom === undefined || message.seq < heldFrom) return false;
    reread.held.set(did, message.seq + 1);
    return true;
  }

  /**
   * The cursor a batch completing `seq` saves: below what is held, and, when that is below
   * `seq`, with what was handled above it (see UpstreamCursor.through).
   */
  #cursorFor(url: string, seq: number): UpstreamCursor {
    const resume = this.#belowHeld(seq)!;
    const through = Math.max(seq, this.#reread?.through ?? seq);
    if (resume >= through) return { url, seq: resume };
    const heldNow = this.#options.heldRepos();
    if (heldNow.length > MAX_SAVED_HELD_REPOS || (this.#reread?.held.size ?? 0) > MAX_SAVED_HELD_REPOS) return { url, seq: resume };
    const held = new Map(this.#reread?.held);
    for (const [did, heldSeq] of heldNow) held.set(did, Math.min(heldSeq, held.get(did) ?? heldSeq));
    if (held.size > MAX_SAVED_HELD_REPOS) return { url, seq: resume };
    return { url, seq: resume, through, held: [...held] };
  }

  #belowHeld(seq: number | undefined): number | undefined {
    const held = this.#options.heldBelow();
    if (held === undefined) return seq;
    return seq === undefined ? held - 1 : Math.min(seq, held - 1);
  }

  #isNewRev(did: string, rev: string): boolean {
    // TIDs sort lexically; revs not newer than the stored one are replays.
    let last = this.#pendingRevs.get(did) ?? this.#committingRevs.get(did) ?? this.#rememberedRevs.get(did) ?? this.#olderRevs.get(did);
    if (last === undefined) {
      last = this.#storedRev(did);
      this.#rememberRev(did, last);
    }
    return last === '' || rev > last || !couldBeWritten(last);
  }

  /**
   * The repo's stored rev, '' if none. One the store cannot read (a page damaged on disk: the
   * store counts and says it) skips nothing, as no rev would: a commit stored again is better than
   * one lost, and its own write of the rev then fails the commit, retried with the reason.
   */
  #storedRev(did: string): string {
    const rev = orUnreadable(() => this.#options.store.getRev(did));
    return rev instanceof UnreadableBufferError ? '' : (rev ?? '');
  }

  #rememberRev(did: string, rev: string): void {
    this.#rememberedRevs.set(did, rev);
    if (this.#rememberedRevs.size < REMEMBERED_REVS) return;
    this.#olderRevs = this.#rememberedRevs;
    this.#rememberedRevs = new Map();
  }

  #accept(message: Extract<UpstreamMessage, { type: 'commit' | 'identity' | 'account' | 'sync' }>): void {
    if (message.type === 'commit') message = this.#withKeptOps(message);
    const { entries, drops } = buildEvents(message, this.#options.clock);
    for (const drop of drops) this.#options.drops.report(drop.reason, drop.detail, { seq: message.seq, path: drop.path });
    if (message.type === 'commit') this.#pendingRevs.set(message.repo, message.rev);
    for (const entry of entries) {
      this.#pending.push(entry);
      this.#pendingBytes += entry.json.byteLength;
    }
    this.#options.metrics.pendingBytes.set(this.#pendingBytes);
    if (!this.#paused && this.#pendingBytes > this.#options.maxPendingBytes) this.#setPaused(true);
  }

  /** The commit with only the ops --ingest-collections keeps; the others are counted, not built. */
  #withKeptOps(message: Extract<UpstreamMessage, { type: 'commit' }>): Extract<UpstreamMessage, { type: 'commit' }> {
    const { keepCollection, metrics } = this.#options;
    if (message.ops.every((op) => keepCollection(op.collection))) return message; // no copy of the ops for nearly every commit
    const ops = message.ops.filter((op) => keepCollection(op.collection));
    metrics.filteredOps.inc(message.ops.length - ops.length);
    return { ...message, ops };
  }

  #scheduleCommit(): void {
    if (this.#committing || this.#pendingSeq === undefined) return;
    this.#committing = this.#commitLoop().finally(() => {
      this.#committing = undefined;
    });
  }

  async #commitLoop(): Promise<void> {
    const { metrics } = this.#options;
    const upstreamUrl = redactUrl(this.#options.upstreamUrl);
    // Let the rest of this event turn's frames join the batch.
    await new Promise(setImmediate);
    await this.#whileBacklogged();
    while (this.#pendingSeq !== undefined) {
      const batch = {
        entries: this.#pending,
        revs: this.#pendingRevs,
        cursor: this.#cursorFor(upstreamUrl, this.#pendingSeq),
      };
      const upstreamMs = this.#lastUpstreamMs;
      this.#pending = [];
      this.#pendingRevs = new Map();
      this.#pendingSeq = undefined;
      const bytes = this.#pendingBytes;
      this.#pendingBytes = 0;
      this.#lastBatchEvents = batch.entries.length;
      this.#committingRevs = batch.revs;
      if (!(await this.#commitWithRetry(batch, bytes))) return;
      for (const [did, rev] of batch.revs) this.#rememberRev(did, rev);
      this.#committingRevs = new Map();
      // A commit that outlived its run (flush gave up on it) leaves the ended run's gauges alone.
      if (this.#abandoned) return;
      if (upstreamMs !== undefined) metrics.upstreamLag.set(Math.max(0, (Date.now() - upstreamMs) / 1000));
      metrics.pendingBytes.set(this.#pendingBytes);
      if (this.#paused && this.#pendingBytes < this.#options.maxPendingBytes / 2) this.#setPaused(false);
    }
  }

  /**
   * Catching up (a turn's read brought BACKLOG_TURN_EVENTS or more: the socket is handing over
   * what queued up, not what just happened), the batch waits for the next turns' reads while
   * each brings as many, up to BACKLOG_TURNS turns or BACKLOG_EVENTS events: one transaction
   * for several reads. A live turn (at 2,000 events/s, a few events) commits at once, and so
   * does the first such read after a live commit: one stall of this thread (a GC pause, a wait
   * for a core) brings as many, and holding it would add turns, each with a replay slice, to the
   * live events read after every stall. A second one in a row is catching up, and gathers.
   */
  async #whileBacklogged(): Promise<void> {
    if (this.#lastBatchEvents !== undefined && this.#lastBatchEvents < BACKLOG_TURN_EVENTS) return;
    let before = 0;
    this.#gathering = true;
    for (let turn = 1; turn < BACKLOG_TURNS && this.#pending.length < BACKLOG_EVENTS && this.#pending.length - before >= BACKLOG_TURN_EVENTS && !this.#abandoned; turn++) {
      before = this.#pending.length;
      await new Promise(setImmediate);
    }
    this.#gathering = false;
  }

  /** Commits the batch, retrying until it works; false only if flush() gave up on it. */
  async #commitWithRetry(batch: Batch, bytes: number): Promise<boolean> {
    const { commit, metrics, logger } = this.#options;
    for (let attempt = 1; !this.#abandoned; attempt++) {
      const stopTimer = metrics.commits.startTimer();
      try {
        await commit(batch);
        stopTimer();
        if (attempt > 1) {
          logger.warn({ attempt }, 'store commit succeeded after retrying; ingest resumes');
          this.#options.onStoreHealth(true);
        }
        return true;
      } catch (err) {
        if (this.#abandoned) return false;
        metrics.commitErrors.inc();
        this.#options.onStoreHealth(false, (err as Error).message);
        // Hold everything (the cursor stays behind these events) and stop reading until it works.
        this.#setPaused(true);
        const delayMs = backoffDelay(attempt - 1, { baseMs: this.#options.retryDelayMs, maxMs: 30_000, maxDoublings: 5 });
        logger.error(
          { err: (err as Error).message, attempt, events: batch.entries.length, bytes, retryInMs: delayMs },
          'STORE COMMIT FAILED (disk full? permissions?): ingest is paused and will retry; nothing is lost',
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
    return false;
  }

  #setPaused(paused: boolean): void {
    this.#paused = paused;
    this.#options.metrics.ingestPaused.set(paused ? 1 : 0);
    this.#options.onBackpressure(paused);
  }
}

/**
 * Whether a kept rev is one its repo can have written by now: a TID at most FUTURE_REV_TOLERANCE_MS
 * ahead of our clock. One that is not (a PDS clock a year ahead, a relay's forgery, or no TID,
 * kept before such frames were dropped) would make every commit until then a stale_rev skip: it
 * skips nothing, and the repo's next commit replaces it.
 */
function couldBeWritten(rev: string): boolean {
  return isTid(rev) && tidMicros(rev) / 1000 <= Date.now() + FUTURE_REV_TOLERANCE_MS;
}
