import type { Entry } from '../events/index.ts';
import type { Collector, SealedRead, SealedReader, Selection } from './sealed-reads.ts';
import type { Lease } from './slabs.ts';
import { boundBeforeLost, type LostEvents } from './tail-runs.ts';

/** A predicate on an event's metadata (did, kind, collection; json.byteLength). */
export interface EventFilter {
  (entry: Entry): boolean;
}

export interface ReadResult {
  entries: Entry[];
  /** The newest time_us examined (matching or not); the next read continues after it. */
  position: number;
}

/**
 * The leases of reads that pinned slabs (slabs.ts), until their callers release them: a reader's
 * release(read) lets the memory the entries' JSON are views of be reused, once nothing holds
 * them, or any view of their bytes, any more. A read never released only keeps that memory from
 * being reused (the garbage collector frees it as usual).
 */
export class ReadLeases {
  readonly #leases = new WeakMap<ReadResult, Lease>();

  /** `read`, remembered with its lease if the lease pinned anything. */
  track<R extends ReadResult>(read: R, lease: Lease): R {
    if (lease.holds) this.#leases.set(read, lease);
    return read;
  }

  release(read: ReadResult): void {
    this.#leases.get(read)?.release();
    this.#leases.delete(read);
  }
}

export interface ReadOptions {
  maxEntries: number;
  /** Stop after examining about this many events even if fewer matched (bounds one read's time). */
  maxScanned?: number;
  /** Stop once the returned events' JSON holds about this many bytes (bounds what a read hands over). */
  maxBytes?: number;
  /** The exact test every returned event passes. */
  filter?: EventFilter;
  /** What `filter` wants by DID and collection, so only matching index ranges are read (see Selection). */
  select?: Selection;
  /**
   * Names a replay that reads on from where this read ends (a subscriber's id), so the blocks
   * merged ahead of it are kept for it (BlockReader.readerAt); concurrent replays share them.
   */
  reader?: number;
  /**
   * The array to write the read's events into, from index 0 (its old contents are overwritten,
   * its length set to the count read), instead of a new one: a replay reading batch after batch
   * hands back its last batch's array, which nothing else holds by then (a new array of 512 per
   * read was a sixth of what twenty replays allocated on the main thread).
   */
  into?: Entry[];
}

/** Room a read's result array starts with: a replay's reads fill about this many. */
const ENTRIES_RESERVED = 512;

/**
 * The visitor that fills a read (false once a bound is reached), and `taken()`, the events it
 * kept. The array starts with room for maxEntries (up to ENTRIES_RESERVED) and is cut to length
 * at the end: grown push by push, it was copied seven times on the way to 512, an eighth of what
 * twenty replays allocated (or it is the caller's `into`). `restart()` forgets what was visited, for a read that starts over.
 */
export function collect(options: ReadOptions): Collector & { taken: () => Entry[] } {
  const { maxEntries, maxScanned = Infinity, maxBytes = Infinity, filter } = options;
  const entries = options.into ?? new Array<Entry>(Math.min(maxEntries, ENTRIES_RESERVED));
  let count = 0;
  let scanned = 0;
  let bytes = 0;
  const visit = (entry: Entry): boolean => {
    if (!filter || filter(entry)) {
      entries[count++] = entry;
      bytes += entry.json.byteLength;
    }
    return count < maxEntries && bytes < maxBytes && ++scanned < maxScanned;
  };
  const taken = (): Entry[] => {
    entries.length = count;
    return entries;
  };
  const restart = (): void => {
    count = scanned = bytes = 0;
  };
  return { visit, restart, taken };
}

/**
 * Visits the stored events with position < time_us ≤ end that the selection can want, in
 * order: sealed blocks (up to sealedUpTo), then the tail. The EventStore keeps its tail in
 * memory; a replay worker thread reads it from its LMDB snapshot (snapshot-reader.ts). Events
 * lost in a damaged tail run (`lost`) are never read past: a read ends before them, as a full
 * one, and the next read throws a DamagedBlockError naming them.
 */
export function readStored(
  position: number,
  readTo: number,
  from: { sealed: SealedReader; sealedUpTo: number; tailAfter: (position: number, end: number) => Iterable<Entry>; lost: readonly LostEvents[] },
  select: Selection | undefined,
  maxScanned: number,
  collector: Collector,
  lease: Lease,
  reader?: number,
): SealedRead {
  const { end, short } = boundBeforeLost(position, readTo, from.lost);
  if (position < from.sealedUpTo) {
    const read = from.sealed.read(position, Math.min(end, from.sealedUpTo), select, maxScanned, collector, lease, reader);
    position = read.position;
    if (read.full) return read;
  }
  for (const entry of from.tailAfter(position, end)) {
    if (entry.timeUs > end) break;
    position = entry.timeUs;
    if (!collector.visit(entry)) return { position, full: true };
  }
  return { position: Math.max(position, end), full: short };
}
