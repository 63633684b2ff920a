import type { Entry } from '../events/index.ts';

/** A DID's entries in the hot log, oldest first, as ordinals (see HotLog); `head` skips evicted ones. */
interface DidQueue {
  ordinals: number[];
  head: number;
}

/**
 * The most recent committed events, in memory, bounded by bytes. It always holds a contiguous
 * suffix of the stored stream: everything after `floor` (the newest time_us it does not hold),
 * so a reader whose position is at or above the floor never needs the disk.
 *
 * It also keeps, per DID, where that DID's events are: a replay for a few DIDs then visits only
 * theirs instead of testing every event of the hot log (~130k events in 64 MiB, ~30 ms of a
 * DID replay that reads ~30 events from disk in a few ms). An entry's ordinal counts every entry
 * ever appended before it; its place in #entries is its ordinal minus #dropped.
 */
export class HotLog {
  #entries: Entry[] = [];
  #start = 0;
  #dropped = 0;
  #bytes = 0;
  #floor: number;
  readonly #byDid = new Map<string, DidQueue>();

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
    const last = this.#entries.at(-1);
    return last !== undefined && this.#entries.length > this.#start ? last.timeUs : this.#floor;
  }

  covers(position: number): boolean {
    return position >= this.#floor;
  }

  append(entries: readonly Entry[]): void {
    for (const entry of entries) {
      const ordinal = this.#dropped + this.#entries.length;
      this.#entries.push(entry);
      this.#bytes += entry.json.byteLength;
      const queue = this.#byDid.get(entry.did);
      if (queue) queue.ordinals.push(ordinal);
      else this.#byDid.set(entry.did, { ordinals: [ordinal], head: 0 });
    }
    while (this.#bytes > this.maxBytes) {
      const evicted = this.#evictOldest();
      if (evicted === undefined) break;
      this.#floor = evicted.timeUs;
    }
    this.#compact();
  }

  /** The oldest entry, now forgotten; undefined when there is none. */
  #evictOldest(): Entry | undefined {
    const evicted = this.#entries[this.#start];
    if (evicted === undefined) return undefined;
    this.#start++;
    this.#bytes -= evicted.json.byteLength;
    const queue = this.#byDid.get(evicted.did)!;
    if (++queue.head === queue.ordinals.length) this.#byDid.delete(evicted.did);
    else if (queue.head > 64 && queue.head * 2 > queue.ordinals.length) {
      queue.ordinals = queue.ordinals.slice(queue.head);
      queue.head = 0;
    }
    return evicted;
  }

  /** Reclaims the evicted prefix in one move once it dominates the array. */
  #compact(): void {
    if (this.#start > 1024 && this.#start * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#start);
      this.#dropped += this.#start;
      this.#start = 0;
    }
  }

  /** Forgets entries with time_us <= timeUs (retention removed them from the store). */
  dropThrough(timeUs: number): void {
    while ((this.#entries[this.#start]?.timeUs ?? Infinity) <= timeUs) this.#evictOldest();
    if (timeUs > this.#floor) this.#floor = timeUs;
    this.#compact();
  }

  /**
   * Visits entries with time_us > position in order until `visit` returns false. Synchronous,
   * so no append can interleave. The caller must have checked covers(position).
   */
  scan(position: number, visit: (entry: Entry) => boolean): void {
    for (let i = this.#firstAfter(position); ; i++) {
      const entry = this.#entries[i];
      if (entry === undefined || !visit(entry)) return;
    }
  }

  /**
   * Visits the entries of these DIDs with time_us > position in order until `visit` returns
   * false; returns the time_us it stopped at, or undefined once it examined everything (up to
   * `newest`). The caller must have checked covers(position).
   */
  scanDids(position: number, dids: ReadonlySet<string>, visit: (entry: Entry) => boolean): number | undefined {
    const from = this.#dropped + this.#firstAfter(position);
    const ordinals: number[] = [];
    for (const did of dids) {
      const queue = this.#byDid.get(did);
      if (!queue) continue;
      for (let i = queue.head; i < queue.ordinals.length; i++) {
        const ordinal = queue.ordinals[i];
        if (ordinal !== undefined && ordinal >= from) ordinals.push(ordinal);
      }
    }
    if (dids.size > 1) ordinals.sort((a, b) => a - b);
    for (const ordinal of ordinals) {
      const entry = this.#entries[ordinal - this.#dropped];
      if (entry !== undefined && !visit(entry)) return entry.timeUs;
    }
    return undefined;
  }

  /** Index (in #entries) of the first entry with time_us > position. */
  #firstAfter(position: number): number {
    let low = this.#start;
    let high = this.#entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#entries[mid]!.timeUs <= position) low = mid + 1; // mid < high <= length
      else high = mid;
    }
    return low;
  }
}
