import type { Logger } from 'pino';

/**
 * A connection on which every frame is dropped — undecoded, or a #commit decoded with every op
 * dropped (its records failing the CIDs its ops name, say) — or is an #info or error frame (a
 * notice, a refusal that did not close) stores nothing while it looks connected (each drop is
 * counted and logged, rate-limited, and so are the notices). A run of such frames with none kept
 * that lasts `afterMs` is said once and fails /ready until a frame is kept or the connection is
 * replaced. Silence is not a run: a quiet relay sends nothing, and a notice followed by silence
 * is never judged. Drops made by later stages (--verify's signature checks) are theirs to report:
 * this sees what the upstream stage drops.
 */
export class NothingKeptRun {
  /** The drops since the last frame kept on this connection: when the first came, and how many. */
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

  /** A frame decoded with something in it kept (any but an #info, an error or a #commit whose every op was dropped). */
  kept(): void {
    if (this.#reason !== undefined) this.logger.warn({ afterFrames: this.#run?.frames }, 'upstream frames are kept again');
    this.connecting();
  }

  /**
   * A frame that keeps nothing: dropped whole, undecoded or a #commit with every op dropped (`last`:
   * the last drop's reason), or an #info or error frame (`last`: its kind and name).
   */
  keptNothing(last: string): void {
    const nowMs = Date.now();
    this.#run ??= { sinceMs: nowMs, frames: 0 };
    this.#run.frames++;
    const seconds = Math.round((nowMs - this.#run.sinceMs) / 1000);
    if (nowMs - this.#run.sinceMs < this.afterMs) return;
    const first = this.#reason === undefined;
    this.#reason = `every upstream frame for ${seconds} s (${this.#run.frames}) could not be decoded, had every op dropped, or was an #info or error frame (last: ${last}): none is stored`;
    if (!first) return;
    this.logger.error(
      { frames: this.#run.frames, seconds, last },
      'UPSTREAM SENDS NOTHING THAT CAN BE STORED: for these seconds every frame it sent could not be decoded, was a commit with every op dropped, or was an #info or error frame, so nothing is stored; /ready fails until one is kept. Check that --upstream names a subscribeRepos firehose (contrail_ingest_drops_total counts each drop by reason, contrail_upstream_frames_total each frame by type).',
    );
  }
}
