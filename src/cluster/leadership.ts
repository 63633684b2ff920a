import type { Logger } from 'pino';
import type { Batch, EventStore } from '../store/index.ts';
import type { HopLog } from './hop-timing.ts';
import type { LeaderLease } from './lease.ts';
import { StreamMadeAgainError, type StreamFollower } from './follower.ts';
import { isUnansweredPublish } from './nats.ts';
import { CutOffBatchError, DeposedError, type StreamWriter } from './stream-writer.ts';

/** One leader's reading of the relay: what the gateway starts for a term and stops at its end. */
export interface IngestRun {
  readonly connected: boolean;
  /** Why the relay is not connected, when it is not. */
  readonly problem: string | undefined;
  /** Why the relay is not being ingested although it is connected (FirehoseClient.notIngesting). */
  readonly notIngesting: string | undefined;
  /** Stops reading and commits what was read; false if it could not. */
  stop(flushTimeoutMs: number): Promise<boolean>;
  /** Drops what was read and not committed: the stream already belongs to another leader. */
  abandon(): void;
}

export interface LeadershipOptions {
  lease: LeaderLease;
  writer: StreamWriter;
  follower: StreamFollower;
  store: EventStore;
  leaseMs: number;
  logger: Logger;
  /**
   * Starts reading the relay, handing each batch to `commit`, which resolves once the batch
   * before it is in the local buffer: this one may still be in flight (one append is always
   * travelling while the next batch is built). The Ingester remembers the revs of every batch
   * whose commit resolved, so its stale-rev check sees a batch still in flight.
   */
  startIngest(commit: (batch: Batch) => Promise<void>): IngestRun;
  onLeaderChange?(leading: boolean): void;
  /** Counts events dropped because they do not fit a NATS message even alone. */
  onOversizedEvents?(count: number): void;
  /** Times each batch's hops (bench/cluster --hops). */
  hops?: HopLog;
  /** After a failed lease check, marker or append: makes the lease bucket and the event stream again if they are gone; true if the stream was (and it said so). */
  restoreMissing(): Promise<boolean>;
  /** Another node's lease stood unrenewed for `stoodMs`, over two leases: sets the bucket's max_age back if its entries no longer expire (nats.ts). */
  restoreLeaseExpiry(stoodMs: number): Promise<void>;
}

/*
 * Every span this file measures (since the last renewal, since the buffer last moved, since the
 * checks began failing) is read on the monotonic clock: a wall clock stepped back (NTP correcting
 * a clock that was ahead) held a leader whose buffer stood still in its lease for the length of
 * the step, and one stepped forward ended terms for nothing.
 */

/** How soon a failed lease check is tried again, while the failures are younger than a check period (sooner if the period is shorter). */
const LEASE_RETRY_MS = 250;

/**
 * Decides whether this node reads the relay. Every lease period / 3 it renews the lease it holds
 * or tries to take a free one. A term begins by fencing (a marker appended to the stream) and
 * waiting until the local buffer holds everything before the marker (renewing the lease while
 * the buffer moves), so the new leader's clock,
 * upstream cursor and revs continue exactly where the stream ends; then ingest starts, appending
 * each batch to the stream while the one before it is still in flight; each is in the local
 * buffer as soon as the stream acknowledges it. A term ends when the lease is lost, an append
 * fails (another leader appended, or NATS did not take it), or the node stops — and the relay is
 * then read by whoever leads next (perhaps this node, in a new term), from the stream's cursor.
 * A node whose follower failed (follower.ts `failed`) gives the lease up for good, whether or not
 * its program stops it: its batches could no longer reach a buffer it serves from.
 *
 * A failed check is tried again every LEASE_RETRY_MS, or every check period if that is shorter
 * (a lease under 750 ms: a retry must not come later than the check it stands for), and only
 * checks still failing a check period after the first are a warning: NATS answers nothing for a
 * moment while it elects a leader for the lease bucket (just made at start, or after a server's
 * loss), and the retry passes. Checks that warned say so when they pass again.
 */
export class Leadership {
  #term: IngestRun | undefined;
  /** The term's newest append: a commit returns while it is still in flight, so a term's end waits for it. */
  #lastAppend: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #lastRenewal = 0;
  #stopped = false;
  /** While a new term waits for the buffer to reach its marker: ends that wait (see #catchUpRenewing). */
  #interruptCatchUp: AbortController | undefined;
  /** When the lease checks began failing in a row (undefined while they pass), and whether that was warned of. */
  #failingSince: number | undefined;
  #failureWarned = false;
  /** Another node's lease as this node last saw it: its entry's revision, and since when it stood unrenewed. */
  #othersLease: { revision: number; since: number } | undefined;

  constructor(private readonly options: LeadershipOptions) {}

  get leading(): boolean {
    return this.#term !== undefined;
  }

  /** Why this leader is not reading the relay, or undefined when it is (or does not lead). */
  get upstreamProblem(): string | undefined {
    const term = this.#term;
    return term && !term.connected ? (term.problem ?? 'not connected') : undefined;
  }

  /** While leading with the relay connected: why it is not being ingested, if it is not. */
  get upstreamNotIngesting(): string | undefined {
    return this.#term?.connected ? this.#term.notIngesting : undefined;
  }

  start(): void {
    void this.options.follower.failed.then(() => this.#giveUp());
    const tick = () => {
      this.#ticking = this.#tick().finally(() => {
        const retrying = this.#failingSince !== undefined && !this.#failureWarned;
        if (!this.#stopped) this.#timer = setTimeout(tick, retrying ? this.#retryMs : this.options.leaseMs / 3);
      });
    };
    tick();
  }

  /** Ends any term (committing what it read), and frees the lease for another node. */
  async stop(flushTimeoutMs: number): Promise<boolean> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#interruptCatchUp?.abort('stopped');
    await this.#ticking;
    const flushed = this.#term ? await this.#endTerm(flushTimeoutMs) : true;
    await this.options.lease.release();
    return flushed;
  }

  /** Ends any term without committing what it read (the next leader reads it again), frees the lease, and stops competing. */
  async #giveUp(): Promise<void> {
    if (this.#stopped) return;
    this.options.logger.warn({ node: this.options.lease.nodeId, leading: this.leading }, 'the stream follower failed: this node gives up the ingest lease and no longer competes for it');
    await this.stop(0);
  }

  async #tick(): Promise<void> {
    const { lease, logger } = this.options;
    try {
      if (lease.held) {
        if (await lease.renew()) {
          this.#lastRenewal = performance.now();
          if (!this.#term) await this.#beginTerm();
        } else {
          logger.warn('lost the ingest lease (it expired, or another node took it): stopping ingest');
          await this.#endTerm(0);
        }
      } else if (await lease.tryAcquire()) {
        this.#lastRenewal = performance.now();
        this.#othersLease = undefined;
        await this.#beginTerm();
      } else await this.#checkOthersLeaseExpires();
      this.#checkPassed();
    } catch (err) {
      this.#checkFailed(err as Error);
      // Checked before and after the restore, which waits on NATS (a request timeout when it is
      // unreachable): a cut-off leader stops appending without waiting for it.
      await this.#stopIfLeaseLapsed();
      await this.options.restoreMissing().catch(() => {});
      await this.#stopIfLeaseLapsed();
    }
  }

  /**
   * A lease held by another node is renewed every check period, or expires after the lease with
   * its bucket's entries. One whose entry stands unchanged for two leases may no longer expire:
   * the bucket's max_age changed by hand, so a dead leader would keep the lease for good. The
   * bucket is checked then, at every check while it stands, and set back if so (nodes set it
   * only when they start).
   */
  async #checkOthersLeaseExpires(): Promise<void> {
    const revision = await this.options.lease.holderRevision();
    const now = performance.now();
    if (revision === undefined || revision !== this.#othersLease?.revision) {
      this.#othersLease = revision === undefined ? undefined : { revision, since: now };
      return;
    }
    const stoodMs = now - this.#othersLease.since;
    if (stoodMs >= 2 * this.options.leaseMs) await this.options.restoreLeaseExpiry(stoodMs);
  }

  /** Past the lease time without a renewal the lease may be another node's: stop appending. */
  async #stopIfLeaseLapsed(): Promise<void> {
    const { leaseMs, logger } = this.options;
    const sinceRenewalMs = performance.now() - this.#lastRenewal;
    if (this.#term && sinceRenewalMs > leaseMs) {
      logger.warn({ sinceRenewalMs, leaseMs }, 'no lease renewal for longer than the lease: this node stops leading (another may have taken over)');
      await this.#endTerm(0);
    }
  }

  get #retryMs(): number {
    return Math.min(LEASE_RETRY_MS, this.options.leaseMs / 3);
  }

  #checkFailed(err: Error): void {
    const now = performance.now();
    this.#failingSince ??= now;
    const failingForMs = now - this.#failingSince;
    if (this.#failureWarned || failingForMs >= this.options.leaseMs / 3) {
      this.#failureWarned = true;
      this.options.logger.warn({ err: err.message, failingForMs }, 'cluster lease check failed');
    } else {
      this.options.logger.debug({ err: err.message, failingForMs }, `cluster lease check failed; trying again in ${this.#retryMs} ms`);
    }
  }

  #checkPassed(): void {
    if (this.#failingSince === undefined) return;
    const failedForMs = performance.now() - this.#failingSince;
    if (this.#failureWarned) this.options.logger.info({ failedForMs }, 'cluster lease checks pass again');
    else this.options.logger.debug({ failedForMs }, 'a cluster lease check passed on a retry');
    this.#failingSince = undefined;
    this.#failureWarned = false;
  }

  async #beginTerm(): Promise<void> {
    const { writer, follower, lease, logger } = this.options;
    // The buffer must reach the marker in the stream it is appended to: one made again since the
    // follower last looked restarts its position first (else a position past the new marker is taken for caught up).
    await follower.checkStream();
    const markerSeq = await writer.fence();
    // Made again after that check, the stream numbers from 1 again: the marker's seq may be below
    // the position (of the stream before) and taken for reached, and this term's own batches for
    // passed. The check restarts the position; the next lease check begins the term again.
    if (await follower.checkStream()) {
      logger.warn({ node: lease.nodeId, markerSeq }, "the cluster stream was made again while this node appended its term's marker: it begins the term at its next lease check");
      return;
    }
    if (!(await this.#catchUpRenewing(markerSeq))) return;
    if (this.#stopped || !lease.held) return;
    // The leader numbers events (followers keep its numbers) from the stream's last, which the
    // buffer holds now; later batches are numbered before the ones ahead of them are back.
    let numbered = this.options.store.lastSeq;
    this.#lastAppend = Promise.resolve();
    const append = async (batch: Batch): Promise<void> => {
      try {
        await follower.waitApplied(await writer.append(batch));
      } catch (err) {
        if (this.#term === term) {
          void this.#endTerm(0);
          void this.#sayAppendFailed(err);
        }
        throw err;
      }
    };
    const term = this.options.startIngest(async (batch) => {
      for (const entry of writer.takeOversizedEvents(batch)) {
        logger.error(
          { did: entry.did, kind: entry.kind, collection: entry.collection, bytes: entry.json.byteLength, maxRecordBytes: writer.maxRecordBytes },
          "DROPPED AN EVENT TOO BIG FOR ONE NATS MESSAGE: raise the NATS servers' max_payload to carry events this big",
        );
        this.options.onOversizedEvents?.(1);
      }
      for (const entry of batch.entries) entry.seq = ++numbered;
      this.options.hops?.cut(batch);
      // Two appends in flight: this batch goes out now, and the reader builds the next while
      // it travels; the commit is done when the one before it is in the buffer.
      const previous = this.#lastAppend;
      const appended = append(batch);
      appended.catch(() => {}); // awaited by the next commit, or at the end of the term
      this.#lastAppend = appended;
      await previous;
    });
    this.#term = term;
    // Its own batches reach its buffer on acknowledgement (ownAppend): no consumer reads them back.
    follower.pause();
    logger.info({ node: lease.nodeId, markerSeq }, 'this node is the ingest leader');
    this.options.onLeaderChange?.(true);
  }

  /**
   * Waits for the buffer to reach the term's marker; true once it has. That takes the node's lag,
   * maybe longer than the lease (a node that takes it far behind), and the loop's next renewal
   * waits for the term to begin, so the lease is renewed meanwhile — but only while the buffer
   * moves: one that stands still for a lease (its commits fail on a full disk, its consumer is
   * stuck) would hold every other node out of the lease with nobody ingesting, so it gives the
   * lease up (with no other node it takes it back at its next check: the writer keeps its marker,
   * still the stream's last message). A stop ends the wait at once (stop() frees the lease). A
   * stream made again meanwhile took the marker with it: the wait ends, and the next check, the
   * lease still held, begins a term on the new stream. A failed renewal here is the loop's to
   * handle next.
   */
  async #catchUpRenewing(markerSeq: number): Promise<boolean> {
    const { lease, leaseMs, follower, logger } = this.options;
    let renewal: Promise<unknown> = Promise.resolve();
    let appliedSeq = follower.appliedSeq;
    let movedAtMs = performance.now();
    const interrupted = new AbortController();
    this.#interruptCatchUp = interrupted;
    if (this.#stopped) interrupted.abort('stopped'); // stopped while the marker was being appended
    const timer = setInterval(() => {
      if (interrupted.signal.aborted) return;
      if (follower.appliedSeq !== appliedSeq) {
        appliedSeq = follower.appliedSeq;
        movedAtMs = performance.now();
      } else if (performance.now() - movedAtMs >= leaseMs) {
        interrupted.abort('stuck');
        return;
      }
      renewal = renewal.then(async () => {
        // Not once the wait ended (stuck or stopped): a renewal racing the release would take the lease back.
        if (lease.held && !interrupted.signal.aborted && (await lease.renew().catch(() => false))) this.#lastRenewal = performance.now();
      });
    }, leaseMs / 3);
    try {
      // Interrupted, the follower forgets the wait: an attempt that gives up leaves nothing behind.
      const outcome = await follower.waitApplied(markerSeq, interrupted.signal).then(
        () => 'caught up' as const,
        (err: unknown) => {
          if (err instanceof StreamMadeAgainError) return 'made again' as const;
          if (!interrupted.signal.aborted) throw err; // the follower failed
          return interrupted.signal.reason as 'stuck' | 'stopped';
        },
      );
      // The marker is gone with the stream: the next check, the lease still held, fences the new one.
      if (outcome === 'made again') logger.warn({ node: lease.nodeId, markerSeq }, "the cluster stream was made again while this node's buffer caught up with its term's marker: it fences the new stream at its next lease check");
      if (outcome === 'stuck') {
        logger.warn({ node: lease.nodeId, markerSeq, appliedSeq, leaseMs }, "this node's buffer did not move toward its term's marker for a whole lease: it gives the ingest lease up for a node that can lead");
        await renewal;
        await lease.release();
      }
      return outcome === 'caught up';
    } finally {
      clearInterval(timer);
      this.#interruptCatchUp = undefined;
      await renewal;
    }
  }

  /**
   * Says why a term's append failed. A publish nothing took (NATS's words: 'jetstream is not
   * enabled') most likely met the stream gone: it is made again now, not at the next lease check,
   * and restoreMissing's line (THE CLUSTER STREAM … WAS GONE) is all that is said of it.
   */
  async #sayAppendFailed(err: unknown): Promise<void> {
    if (isUnansweredPublish(err) && (await this.options.restoreMissing().catch(() => false))) return;
    this.options.logger.warn({ err: (err as Error).message }, appendFailure(err));
  }

  async #endTerm(flushTimeoutMs: number): Promise<boolean> {
    const term = this.#term;
    if (!term) return true;
    this.#term = undefined;
    if (flushTimeoutMs === 0) term.abandon();
    try {
      return (await term.stop(flushTimeoutMs)) && (flushTimeoutMs === 0 || (await this.#lastAppend.then(() => true, () => false)));
    } finally {
      // Not leading, the node follows the stream again, whatever stopping the term did.
      this.options.follower.resume();
      this.options.onLeaderChange?.(false);
    }
  }
}

function appendFailure(err: unknown): string {
  if (err instanceof DeposedError) return 'another node appended to the event stream: this node stops leading';
  if (err instanceof CutOffBatchError) return 'this term ends so that a new leader marker closes the cut-off batch';
  if (isUnansweredPublish(err)) return 'no stream in NATS took the append (its leader being elected?): this term ends, and the next resumes from the stream';
  return 'appending to the event stream failed: this term ends, and the next resumes from the stream';
}
