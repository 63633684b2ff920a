/**
 * Fetches at once from one kind of source (the PLC directory, or did:web hosts), the rest waiting
 * their turn in order, up to a bound on how many wait.
 */
export class FetchSlots {
  readonly #waiting: (() => void)[] = [];
  #running = 0;

  constructor(
    private readonly size: number,
    private readonly maxWaiting: number,
  ) {}

  /** Resolves true once a slot is taken; false at once if `maxWaiting` wait already, unless told to `wait` anyway. */
  take(wait: boolean): Promise<boolean> {
    if (this.#running < this.size) {
      this.#running++;
      return Promise.resolve(true);
    }
    if (!wait && this.#waiting.length >= this.maxWaiting) return Promise.resolve(false);
    return new Promise((resolve) => this.#waiting.push(() => resolve(true)));
  }

  /** Gives a taken slot back: to the first waiting, if any. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }
}
