/**
 * When each DID directory may be asked again after it asked to wait (a 429's or 503's
 * Retry-After): the PLC directory, and each did:web host on its own. did:web hosts are anyone's,
 * so at most MAX_WAITING_DIRECTORIES waits are kept, the one set first dropped first.
 */
const MAX_WAITING_DIRECTORIES = 10_000;

export class DirectoryWaits {
  readonly #until = new Map<string, number>();

  /** When `directory` may be asked again, while that is still ahead of `now`. */
  until(directory: string, now = Date.now()): number | undefined {
    const until = this.#until.get(directory);
    if (until === undefined || until > now) return until;
    this.#until.delete(directory);
    return undefined;
  }

  /**
   * `directory` asked not to be asked for `waitMs` from `now`: a running wait is only lengthened.
   * Returns whether this begins a wait (none was running), which is then said once.
   */
  askedToWait(directory: string, waitMs: number, now = Date.now()): boolean {
    const running = this.until(directory, now);
    if (waitMs <= 0) return false;
    if (running === undefined || now + waitMs > running) this.#until.set(directory, now + waitMs);
    if (this.#until.size > MAX_WAITING_DIRECTORIES) this.#until.delete(this.#until.keys().next().value!);
    return running === undefined;
  }
}
