import type { Logger } from 'pino';

/**
 * A relay's seqs only rise on a connection, from just after the cursor it was dialled with. A frame
 * at or below the highest seq read (or that cursor) is one the later stages drop as already taken —
 * the Verifier as a duplicate with --verify on (it sees every frame, the Ingester only what it
 * delivers), else the Ingester as duplicate_seq — so a run of them that lasts `afterMs` is a relay
 * whose numbering jumped ahead (one frame far ahead is enough) or restarted, and it is said once.
 * Watched here, on the frames read, because the stage that drops them depends on --verify and may
 * never hand them on. Each connection starts again from its cursor: a reconnect that resumes below
 * messages --verify still holds reads them again above that cursor, rising, which is no jump.
 */
export class SeqsBehind {
  /** The highest seq this connection was dialled after or has read; undefined: none (live, or after FutureCursor). */
  #highest: number | undefined;
  /** The frames at or below #highest since the last one above: when the first came, and its seq. */
  #run: { sinceMs: number; seq: number } | undefined;
  #reason: string | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly afterMs: number,
  ) {}

  /** Why nothing the relay sends is taken although it is connected; undefined otherwise (`/ready` reports it). */
  get reason(): string | undefined {
    return this.#reason;
  }

  /** A new connection, dialled with `cursor`: the run so far belonged to the last one. */
  connecting(cursor: number | undefined): void {
    this.#highest = cursor;
    this.#forgetRun();
  }

  /** The relay answered FutureCursor: it numbers from its own tip, so every seq is new again. */
  restarted(): void {
    this.#highest = undefined;
    this.#forgetRun();
  }

  /** Whether `seq` is new: above the cursor and every seq read on this connection. */
  read(seq: number): boolean {
    if (this.#highest === undefined || seq > this.#highest) {
      this.#highest = seq;
      if (this.#reason !== undefined) this.logger.warn({ seq }, 'upstream frames are taken again');
      this.#forgetRun();
      return true;
    }
    const nowMs = Date.now();
    this.#run ??= { sinceMs: nowMs, seq };
    if (this.#reason !== undefined || nowMs - this.#run.sinceMs < this.afterMs) return false;
    this.#reason = `every upstream frame since seq ${this.#run.seq} is at or below seq ${this.#highest}, already read: none is stored`;
    this.logger.error(
      { from: this.#run.seq, now: seq, highest: this.#highest, seconds: Math.round((nowMs - this.#run.sinceMs) / 1000) },
      'UPSTREAM SEQS WENT BACK: for these seconds every frame came at or below the highest seq already read, so each is dropped as already taken. The relay\'s numbering jumped ahead or restarted; /ready fails until a frame above it comes. A restart dials again from the saved cursor: a relay whose numbering restarted answers FutureCursor, and contrail resumes from its tip.',
    );
    return false;
  }

  #forgetRun(): void {
    this.#run = undefined;
    this.#reason = undefined;
  }
}
