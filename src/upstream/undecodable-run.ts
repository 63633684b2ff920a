import type { Logger } from 'pino';

/**
 * A connection on which every frame is dropped undecoded (each one a counted, rate-limited drop)
 * stores nothing while it looks connected. A run of such frames with no decoded one that lasts
 * `afterMs` is said once and fails /ready until a frame decodes or the connection is replaced.
 * Silence is not a run: a quiet relay sends nothing to drop.
 */
export class UndecodableRun {
  /** The drops since the last decoded frame on this connection: when the first came, and how many. */
  #run: { sinceMs: number; frames: number } | undefined;
  #reason: string | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly afterMs: number,
  ) {}

  /** Why nothing the relay sends is stored although it is connected; undefined otherwise. */
  get reason(): string | undefined {
    return this.#reason;
  }

  /** A new connection: the run so far belonged to the last one. */
  connecting(): void {
    this.#run = undefined;
    this.#reason = undefined;
  }

  decoded(): void {
    if (this.#reason !== undefined) this.logger.warn({ afterFrames: this.#run?.frames }, 'upstream frames decode again');
    this.connecting();
  }

  dropped(reason: string): void {
    const nowMs = Date.now();
    this.#run ??= { sinceMs: nowMs, frames: 0 };
    this.#run.frames++;
    const seconds = Math.round((nowMs - this.#run.sinceMs) / 1000);
    if (nowMs - this.#run.sinceMs < this.afterMs) return;
    const first = this.#reason === undefined;
    this.#reason = `every upstream frame for ${seconds} s (${this.#run.frames}) could not be decoded (last: ${reason}): none is stored`;
    if (!first) return;
    this.logger.error(
      { frames: this.#run.frames, seconds, lastReason: reason },
      'UPSTREAM SENDS ONLY UNDECODABLE FRAMES: for these seconds no frame it sent could be decoded, so nothing is stored; /ready fails until one decodes. Check that --upstream names a subscribeRepos firehose (contrail_ingest_drops_total counts each drop by reason).',
    );
  }
}
