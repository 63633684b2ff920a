/**
 * Issues `time_us` cursors: unique and strictly increasing, `max(now_µs, last + 1)`.
 * `last` starts from what the store recovered, so a restarted process — or a wall clock
 * that stepped back — never reissues a value a client may already hold.
 */
export class CursorClock {
  #last: number;

  constructor(
    lastIssued = 0,
    private readonly nowMicros: () => number = wallClockMicros,
  ) {
    this.#last = lastIssued;
  }

  next(): number {
    const now = this.nowMicros();
    this.#last = now > this.#last ? now : this.#last + 1;
    return this.#last;
  }

  get lastIssued(): number {
    return this.#last;
  }
}

export function wallClockMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}
