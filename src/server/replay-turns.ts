/**
 * Replays take turns: one shared slice of time per event-loop turn, round robin, so twenty
 * replaying clients cost live sends (and ingest) one slice of waiting, not twenty.
 *
 * Live work goes first: the slice runs in setImmediate, queued at the end of the slice before,
 * so it would run ahead of a commit that frames read in the same turn queued (the ingester also
 * commits in setImmediate) — making every live event wait a whole slice more. When `liveFirst`
 * says such a commit is due, the slice steps aside and runs once the commit's live sends are
 * done (`liveDone`, in a microtask: still in this turn), so replays step in every turn and no
 * turn's live events wait behind them. A commit that never says so (one failing and retried)
 * gets its turn once in a row: the slice runs in the next turn whatever is due, so replays are
 * slowed, never stopped.
 */
export class ReplayTurns<T> {
  /** Waiting for their next step, in turn order. */
  readonly #waiting = new Set<T>();
  #scheduled = false;
  /** The slice stepped aside for live work that has not said it is done (see liveDone). */
  #steppedAside = false;

  /**
   * @param step one bounded step of a replay; true while it has more to do.
   * @param sliceMs how long steps together may run in one turn of the event loop.
   * @param liveFirst whether live work (a commit and its publish) waits to run in this turn.
   */
  constructor(
    private readonly step: (replay: T) => boolean,
    private readonly sliceMs: number,
    private readonly liveFirst: () => boolean = () => false,
  ) {}

  /** Queues a replay for its next step (once, however often it is queued). */
  queue(replay: T): void {
    if (this.#waiting.has(replay)) return;
    this.#waiting.add(replay);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#waiting.size === 0) return;
    this.#scheduled = true;
    setImmediate(() => this.#run());
  }

  /** The live work the slice stepped aside for is done (a commit published): the slice runs now, after it, in this turn. */
  liveDone(): void {
    if (!this.#steppedAside) return;
    this.#steppedAside = false;
    queueMicrotask(() => this.#slice());
  }

  #run(): void {
    this.#scheduled = false;
    if (!this.#steppedAside && this.liveFirst()) {
      this.#steppedAside = true;
      // In case the live work never says it is done: the slice's turn comes next turn anyway.
      this.#schedule();
      return;
    }
    this.#steppedAside = false;
    this.#slice();
  }

  #slice(): void {
    const deadline = performance.now() + this.sliceMs;
    while (this.#waiting.size > 0 && performance.now() < deadline) {
      for (const replay of this.#waiting) {
        this.#waiting.delete(replay);
        // Still replaying after this step: back to the end of the line.
        if (this.step(replay)) this.#waiting.add(replay);
        if (performance.now() >= deadline) break;
      }
    }
    this.#schedule();
  }
}
