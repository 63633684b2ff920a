import type { Entry } from '../events/index.ts';
import { DamagedBlockError, type BlockInfo, type BlockReader } from './blocks.ts';
import type { ClosingRanges } from './read-errors.ts';
import type { Lease } from './slabs.ts';
import { POSTING_BYTES, didHash, hashesTo, partOfPosting, posting, timeOfPosting } from './did-keys.ts';

/**
 * What a reader's filter wants by DID and collection, so the store can read only the matching
 * index ranges and partitions. It must never exclude an event the reader's exact filter accepts
 * (the filter still checks every candidate). Empty sets mean "any". Collections filter commit
 * events only: identity, account and sync events pass every collection filter.
 */
export interface Selection {
  dids: ReadonlySet<string>;
  collections: ReadonlySet<string>;
  /** Collection prefixes with their trailing dot (`app.bsky.`). */
  prefixes: readonly string[];
}

/** Visits one candidate; false once the read is full. */
export type Visit = (entry: Entry) => boolean;

/** What a read visits its candidates with. */
export interface Collector {
  visit: Visit;
  /** Forgets every candidate visited so far: the read starts over from its first position. */
  restart: () => void;
}

export interface SealedRead {
  /** The newest time_us examined; everything wanted up to it was visited. */
  position: number;
  /** The visitor said stop (the read is full). */
  full: boolean;
}

/**
 * The events of a block the per-DID index has no entries for, time_us `first` to `end` (the
 * block's): a rebuild could not read them (the block is damaged on disk). DID-filtered reads
 * read such a block itself, as a scan does, and so end at its damage as other reads do.
 */
export type IndexGap = [first: number, end: number];

/** A block visit costs about this many events' worth of a scan (its directory entry and gets). */
const BLOCK_VISIT_COST = 64;
/**
 * The DID index is used when its candidates are fewer than the events in sealed blocks divided
 * by this: each candidate may decompress one partition of its block (a few hundred events),
 * a scan decompresses every event once.
 */
const DID_INDEX_SELECTIVITY = 64;

interface Plan {
  byDid: boolean;
  /** Some partitions can be skipped (a collection filter). */
  partial: boolean;
  /** Whether the selection wants the partition's events at all (decided per partition, then memoized). */
  wantsPart: (part: number) => boolean;
}

/** How many sealed reads took each way (for metrics, and for tests to see the index used). */
export interface ReadPlanCounts {
  didIndex: number;
  partitions: number;
  everything: number;
}

/** Postings one read takes of each wanted DID's index range at most (a read of a busier DID ends there; the next goes on). */
export const DID_POSTINGS_PER_READ = 512;

/**
 * Reads sealed blocks for one readAfter call: by the per-DID index when the selection names
 * DIDs and the index is selective enough, otherwise block by block, decompressing only the
 * partitions the selection can want.
 */
export class SealedReader {
  readonly plans: ReadPlanCounts = { didIndex: 0, partitions: 0, everything: 0 };
  readonly #plans = new WeakMap<Selection, Plan>();
  readonly #everything: Plan = { byDid: false, partial: false, wantsPart: () => true };

  constructor(
    private readonly directory: ClosingRanges<BlockInfo, number>,
    private readonly byDid: ClosingRanges<Buffer, Buffer>,
    private readonly blocks: BlockReader,
    /** The partition's collection: null for identity/account, undefined for the one collections share. */
    private readonly collectionOf: (part: number) => string | null | undefined,
    /** Events in sealed blocks (for the selectivity estimate). */
    private readonly sealedCount: () => number,
    /** Whether the DID index can be trusted (false after an inconsistency, until rebuilt). */
    private readonly didIndexUsable: () => boolean,
    /** Events at or below this were trimmed: their index postings may not be removed yet, and are not read. */
    private readonly trimmedUpTo: () => number,
    /** Blocks whose events have no index entries, oldest first (some may be trimmed already). */
    private readonly indexGaps: () => readonly IndexGap[],
    private readonly onIndexInconsistent: (detail: string) => void,
    /** DID_POSTINGS_PER_READ; tests make it small, so that small buffers hold DIDs busier than one read. */
    private readonly didPostingsPerRead = DID_POSTINGS_PER_READ,
  ) {}

  /**
   * Visits the wanted events with position < time_us ≤ end, in order; their slabs are pinned in
   * `lease` (see BlockReader). A `reader` reading whole blocks has the merges ahead of it kept
   * (BlockReader.readerAt) until it reads past them or reaches `end`.
   */
  read(position: number, end: number, select: Selection | undefined, maxScanned: number, collector: Collector, lease: Lease, reader?: number): SealedRead {
    const { visit } = collector;
    const plan = select ? this.#planFor(select) : this.#everything;
    if (plan.byDid && this.didIndexUsable()) {
      this.plans.didIndex++;
      if (reader !== undefined) this.blocks.readerDone(reader);
      // A block without index entries is read itself, in a read of its own: the index read stops
      // before it, so that its damage, which fails a read that got nowhere (endBefore), never
      // costs the events read before it.
      const gap = this.#gapAfter(position, end);
      if (gap && position >= gap[0] - 1) return endedShort(this.#readBlocks(position, Math.min(end, gap[1]), plan, maxScanned, visit, lease), end);
      const indexEnd = gap ? gap[0] - 1 : end;
      const read = this.#readByDid(position, indexEnd, select!.dids, plan, maxScanned, visit);
      if (typeof read !== 'string') return endedShort(read, end);
      // The wrong entry may have hidden one of the DID's events behind those visited: start over, scanning.
      this.onIndexInconsistent(read);
      collector.restart();
      return this.#readBlocks(position, end, plan, maxScanned, visit, lease);
    }
    if (plan.partial) this.plans.partitions++;
    else this.plans.everything++;
    const read = this.#readBlocks(position, end, plan, maxScanned, visit, lease);
    if (reader === undefined) return read;
    if (read.full && !plan.partial) this.blocks.readerAt(reader, read.position);
    else this.blocks.readerDone(reader);
    return read;
  }

  /** The first block without index entries that holds events after `position`, up to `end`, and is not trimmed. */
  #gapAfter(position: number, end: number): IndexGap | undefined {
    const floor = Math.max(position, this.trimmedUpTo());
    return this.indexGaps().find(([first, last]) => last > floor && first <= end);
  }

  #planFor(select: Selection): Plan {
    let plan = this.#plans.get(select);
    if (plan) return plan;
    const anyCollection = select.collections.size === 0 && select.prefixes.length === 0;
    const decided = new Map<number, boolean>();
    const wantsPart = anyCollection
      ? () => true
      : (part: number) => {
          let wants = decided.get(part);
          if (wants === undefined) {
            const collection = this.collectionOf(part);
            wants = collection == null || select.collections.has(collection) || select.prefixes.some((p) => collection.startsWith(p));
            decided.set(part, wants);
          }
          return wants;
        };
    plan = { byDid: select.dids.size > 0 && this.#didIndexIsSelective(select.dids), partial: !anyCollection, wantsPart };
    this.#plans.set(select, plan);
    return plan;
  }

  /** Counts the DIDs' index entries, stopping as soon as they are too many to beat a scan. */
  #didIndexIsSelective(dids: ReadonlySet<string>): boolean {
    const limit = this.sealedCount() / DID_INDEX_SELECTIVITY;
    let candidates = 0;
    for (const did of dids) {
      candidates += this.byDid.getValuesCount(didHash(did));
      if (candidates > limit) return false;
    }
    return true;
  }

  #readBlocks(position: number, end: number, plan: Plan, maxScanned: number, visit: Visit, lease: Lease): SealedRead {
    const from = position;
    let scanned = 0;
    for (const { key: blockEnd, value: info } of this.directory.getRange({ start: position + 1 })) {
      if (info.first > end) break;
      const parts = info.parts.filter(plan.wantsPart);
      let events: readonly Entry[];
      try {
        events = parts.length === 0 ? [] : this.blocks.merged(blockEnd, info, parts, lease);
      } catch (err) {
        return endBefore(err, from, position);
      }
      for (const entry of events) {
        if (entry.timeUs <= position) continue;
        if (entry.timeUs > end) return { position: end, full: false };
        scanned++;
        if (!visit(entry)) return { position: entry.timeUs, full: true };
      }
      position = Math.min(blockEnd, end);
      scanned += BLOCK_VISIT_COST;
      if (position >= end) break;
      if (scanned >= maxScanned) return { position, full: true };
    }
    return { position: Math.max(position, end), full: false };
  }

  /**
   * Merges the DIDs' index ranges in time order. Each range is read up to `batch` keys; where one
   * stopped early, candidates after its last key are not complete yet, so this read ends there —
   * as a full read (the caller reads on from its position next time), not as one that reached
   * `end`, after which the caller would go on to the tail past the sealed events not yet read.
   * An index entry that contradicts the blocks ends the read with what is wrong (a string): one
   * that names no event of the partition it gives, or an event of a DID without the entry's hash.
   */
  #readByDid(position: number, end: number, dids: ReadonlySet<string>, plan: Plan, maxScanned: number, visit: Visit): SealedRead | string {
    const from = position;
    const batch = this.didPostingsPerRead;
    const candidates: Array<{ timeUs: number; part: number; key: Buffer }> = [];
    let complete = end;
    for (const did of dids) {
      let read = 0;
      let last = 0;
      const key = didHash(did);
      const range = { start: posting(Math.max(position, this.trimmedUpTo()) + 1, 0), end: posting(end, 0xffff), inclusiveEnd: true, limit: batch };
      for (const value of this.byDid.getValues(key, range)) {
        if (value.length !== POSTING_BYTES) return `a DID index entry of ${value.length} bytes`;
        last = timeOfPosting(value);
        read++;
        const part = partOfPosting(value);
        if (plan.wantsPart(part)) candidates.push({ timeUs: last, part, key });
      }
      if (read === batch) complete = Math.min(complete, last);
    }
    candidates.sort((a, b) => a.timeUs - b.timeUs);
    let scanned = 0;
    let block: { end: number; info: BlockInfo } | undefined;
    let previous = position;
    let previousKey: Buffer | undefined;
    for (const { timeUs, part, key } of candidates) {
      if (timeUs > complete) break;
      if (timeUs === previous) {
        // Two wanted DIDs that share a hash list the event twice, under the one key; under two keys, one of them is wrong.
        if (previousKey && !key.equals(previousKey)) return `the DID index lists time_us ${timeUs} under two DID hashes`;
        continue;
      }
      previous = timeUs;
      previousKey = key;
      if (!block || timeUs > block.end || timeUs < block.info.first) {
        block = this.#blockHolding(timeUs);
        if (!block) return `the DID index names time_us ${timeUs}, which no block holds`;
      }
      let entry: Entry | undefined;
      try {
        entry = block.info.parts.includes(part) ? this.blocks.find(block.end, block.info, part, timeUs) : undefined;
      } catch (err) {
        return endBefore(err, from, position);
      }
      if (!entry) return `the DID index puts time_us ${timeUs} in partition ${part} of block ${block.end}, which lacks it`;
      // A posting names its DID's event: one of another repo means the posting is wrong (a flipped
      // bit in its time_us can name an event that exists), and the DID's own event would be missed.
      if (!hashesTo(entry.did, key)) return `the DID index lists time_us ${timeUs}, an event of another DID, under ${key.toString('hex')}`;
      position = timeUs;
      if (!visit(entry)) return { position, full: true };
      if (++scanned >= maxScanned) return { position, full: true };
    }
    if (complete < end) return { position: Math.max(position, complete), full: true };
    return { position: Math.max(position, end), full: false };
  }

  #blockHolding(timeUs: number): { end: number; info: BlockInfo } | undefined {
    for (const { key, value } of this.directory.getRange({ start: timeUs, limit: 1 })) {
      if (value.first <= timeUs) return { end: key, info: value };
    }
    return undefined;
  }
}

/** A read that stopped short of `end` (at a block without index entries) as a full one: the caller reads on from its position. */
function endedShort(read: SealedRead, end: number): SealedRead {
  return read.full || read.position >= end ? read : { position: read.position, full: true };
}

/**
 * A block that cannot be read (DamagedBlockError) ends a read that had got past `from` where it
 * got to, keeping what it took: the next read begins at the block, and that one throws, so a
 * reader gets every event before the damage and then hears of it.
 */
function endBefore(err: unknown, from: number, position: number): SealedRead {
  if (err instanceof DamagedBlockError && position > from) return { position, full: true };
  throw err;
}
