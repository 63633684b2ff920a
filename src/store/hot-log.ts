import type { Entry } from '../events/index.ts';

/**
 * The most recent committed events, in memory, bounded by bytes. It always holds a contiguous
 * suffix of the stored stream: everything after `floor` (the newest time_us it does not hold),
 * so a reader whose position is at or above the floor never needs the disk.
 */
export class HotLog {
  #entries: Entry[] = [];
  #start = 0;
  #bytes = 0;
  #floor: number;

  constructor(
    private readonly maxBytes: number,
    /** Newest time_us already in the store when the log starts empty. */
    floor: number,
  ) {
    this.#floor = floor;
  }

  get floor(): number {
    return this.#floor;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get newest(): number {
    return this.#entries.length > this.#start ? this.#entries[this.#entries.length - 1].timeUs : this.#floor;
  }

  covers(position: number): boolean {
    return position >= this.#floor;
  }

  append(entries: readonly Entry[]): void {
    for (const entry of entries) {
      this.#entries.push(entry);
      this.#bytes += entry.json.byteLength;
    }
    while (this.#bytes > this.maxBytes && this.#start < this.#entries.length) {
      const evicted = this.#entries[this.#start++];
      this.#bytes -= evicted.json.byteLength;
      this.#floor = evicted.timeUs;
    }
    this.#compact();
  }

  /** Reclaims the evicted prefix in one move once it dominates the array. */
  #compact(): void {
    if (this.#start > 1024 && this.#start * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Forgets entries with time_us <= timeUs (retention removed them from the store). */
  dropThrough(timeUs: number): void {
    while (this.#start < this.#entries.length && this.#entries[this.#start].timeUs <= timeUs) {
      this.#bytes -= this.#entries[this.#start++].json.byteLength;
    }
    if (timeUs > this.#floor) this.#floor = timeUs;
    this.#compact();
  }

  /**
   * Visits entries with time_us > position in order until `visit` returns false. Synchronous,
   * so no append can interleave. The caller must have checked covers(position).
   */
  scan(position: number, visit: (entry: Entry) => boolean): void {
    let low = this.#start;
    let high = this.#entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#entries[mid].timeUs <= position) low = mid + 1;
      else high = mid;
    }
    for (let i = low; i < this.#entries.length; i++) if (!visit(this.#entries[i])) return;
  }
}
