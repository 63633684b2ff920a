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

/** Fixed for the process: read once, as its getter validates its receiver on every call (about 1% of ingest's CPU). */
const TIME_ORIGIN_MS = performance.timeOrigin;

export function wallClockMicros(): number {
  return Math.floor((TIME_ORIGIN_MS + performance.now()) * 1000);
}
