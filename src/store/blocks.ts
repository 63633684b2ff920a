import type { Database } from 'lmdb';
import type { Entry } from '../events/index.ts';
import { copyRecords, decodeRecords, findRecord } from './codec.ts';
import type { Dictionaries } from './dictionaries.ts';

/**
 * A block: a run of consecutive events (by time_us), split by partition — one partition per
 * collection, partition 0 for the repo-level events (identity, account, sync) — each partition
 * compressed as one zstd frame with the buffer's dictionary. `blocks` maps [block end, partition] → frame;
 * `directory` maps block end (the time_us of its last event) → BlockInfo.
 *
 * Why split by collection: a collection filter then decompresses only its own partitions (and
 * partition 0, which every collection filter passes), so `app.bsky.graph.block` costs what its
 * 1.6 % of the events cost, not a decompression of everything; and events of one collection
 * compress better together. A DID lookup decompresses one partition of one block.
 */
export interface BlockInfo {
  /** time_us of the block's first event. */
  first: number;
  firstSeq: number;
  lastSeq: number;
  /** Store-local number of the dictionary its frames were compressed with. */
  dict: number;
  /** Partitions present, ascending, and how many events each holds. */
  parts: number[];
  counts: number[];
}

export type BlockKey = [end: number, part: number];

/**
 * A block's events (oldest first, at least one) split by partition (`parts`: each event's) —
 * `byPart` is parallel to `info.parts`. The sealer compresses one partition per step (compressPartition), so a block is
 * never one long task.
 */
export function partitionBlock(entries: readonly Entry[], parts: readonly number[], dict: number) {
  const lists = new Map<number, Entry[]>();
  for (const [index, entry] of entries.entries()) {
    const part = parts[index]!; // parts is parallel to entries
    const list = lists.get(part);
    if (list) list.push(entry);
    else lists.set(part, [entry]);
  }
  const present = [...lists.keys()].sort((a, b) => a - b);
  const byPart = present.map((part) => lists.get(part)!);
  const first = entries[0];
  const last = entries.at(-1);
  if (first === undefined || last === undefined) throw new Error('a block holds at least one event');
  const info: BlockInfo = {
    first: first.timeUs,
    firstSeq: first.seq!,
    lastSeq: last.seq!,
    dict,
    parts: present,
    counts: byPart.map((list) => list.length),
  };
  return { end: last.timeUs, info, byPart };
}

/** One partition's stored events (see copyRecords) as its zstd frame. */
export function compressPartition(events: readonly Entry[], dictionaries: Dictionaries): Buffer {
  return dictionaries.compress(copyRecords(events));
}

/**
 * Reads blocks' partitions, decompressed once and kept in a byte-bounded LRU cache shared by
 * every reader (concurrent replays from old cursors read the same blocks). A partition is
 * decoded into entries only when a reader wants all of it, and its entries kept beside its
 * bytes only when read alone (a collection filter's); a whole block's entries are kept in its
 * merge; an index lookup decodes just its event. Entries' JSON are views of their decompressed
 * buffer, which nothing reuses, so readers may keep them.
 */
export class BlockReader {
  readonly #cache = new Map<string, { bytes: Buffer; entries?: Entry[] }>();
  /** Whole blocks' merged events, by block end, oldest first (the partitions' own entries, see WHOLE_BLOCKS_KEPT). */
  readonly #wholeBlocks = new Map<number, Entry[]>();
  #cachedBytes = 0;

  constructor(
    private readonly blocks: Database<Buffer, BlockKey>,
    private readonly dictionaries: Dictionaries,
    private readonly cacheBytes: number,
  ) {}

  /** One partition's events, oldest first. */
  part(end: number, info: BlockInfo, part: number): Entry[] {
    const cached = this.#decompressed(end, info, part);
    return (cached.entries ??= decodeRecords(cached.bytes));
  }

  /** One partition's events, decoded from the cached bytes without keeping them there (unless some reader already decoded them). */
  #decodedOnce(end: number, info: BlockInfo, part: number): Entry[] {
    const cached = this.#decompressed(end, info, part);
    return cached.entries ?? decodeRecords(cached.bytes);
  }

  /** The partition's event with this time_us, if it holds one. */
  find(end: number, info: BlockInfo, part: number, timeUs: number): Entry | undefined {
    const cached = this.#decompressed(end, info, part);
    return cached.entries ? findByTime(cached.entries, timeUs) : findRecord(cached.bytes, timeUs);
  }

  #decompressed(end: number, info: BlockInfo, part: number): { bytes: Buffer; entries?: Entry[] } {
    const id = `${end}/${part}`;
    const hit = this.#cache.get(id);
    if (hit) {
      this.#cache.delete(id);
      this.#cache.set(id, hit);
      return hit;
    }
    // Read into LMDB's reused read buffer (no allocation, no second copy): the frame is decompressed before any other read.
    const read = () => {
      const frame = this.blocks.getBinaryFast([end, part]);
      if (!frame) throw new Error(`block ${end} lacks its partition ${part}`);
      // The reused buffer's `length` is the value's, its byteLength the buffer's: native code reads the latter.
      return new Uint8Array(frame.buffer, frame.byteOffset, frame.length);
    };
    const decompressed = { bytes: this.dictionaries.decompress(read, info.dict) };
    this.#cache.set(id, decompressed);
    this.#cachedBytes += decompressed.bytes.byteLength;
    for (const [key, value] of this.#cache) {
      if (this.#cachedBytes <= this.cacheBytes) break;
      this.#cache.delete(key);
      this.#cachedBytes -= value.bytes.byteLength;
    }
    return decompressed;
  }

  /**
   * The events of the given partitions of a block, merged in time_us order. A whole block's
   * merge is kept for the few most recently merged blocks: a replay reads a block in several
   * batches, and concurrent replays from old cursors read the same blocks.
   */
  merged(end: number, info: BlockInfo, parts: readonly number[]): Entry[] {
    const onlyPart = parts.length === 1 ? parts[0] : undefined;
    if (onlyPart !== undefined) return this.part(end, info, onlyPart);
    const whole = parts.length === info.parts.length;
    if (whole) {
      const hit = this.#wholeBlocks.get(end);
      if (hit) return hit;
    }
    // A whole block's partitions are decoded for the merge alone, not kept with their bytes:
    // the merge holds their events (kept below), and events cached for as long as 64 MiB of
    // bytes outlive the young generation, so every full replay's event went through the old one.
    const merged = mergeParts(info, parts.map((part) => (whole ? this.#decodedOnce(end, info, part) : this.part(end, info, part))));
    if (whole) {
      this.#wholeBlocks.set(end, merged);
      for (const key of this.#wholeBlocks.keys()) {
        if (this.#wholeBlocks.size <= WHOLE_BLOCKS_KEPT) break;
        this.#wholeBlocks.delete(key);
      }
    }
    return merged;
  }

  /** Forgets a block's cached partitions (retention removed it). */
  forget(end: number, info: BlockInfo): void {
    this.#wholeBlocks.delete(end);
    for (const part of info.parts) {
      const id = `${end}/${part}`;
      const hit = this.#cache.get(id);
      if (!hit) continue;
      this.#cache.delete(id);
      this.#cachedBytes -= hit.bytes.byteLength;
    }
  }
}

/**
 * Whole blocks whose merged event lists are kept, enough for the blocks concurrent replays are
 * in. A list holds its events (and so their decompressed partitions) even after the byte-bounded
 * partition cache let them go: at most this many blocks' worth on top of blockCacheBytes.
 */
const WHOLE_BLOCKS_KEPT = 32;

/**
 * The partitions' events in time_us order. Where the block's seqs are consecutive (every block
 * this store sealed from its own commits: seqs and time_us increase together), each event's
 * place is its seq's offset, so the merge is one pass; otherwise (a replicated block with gaps)
 * it sorts.
 */
function mergeParts(info: BlockInfo, lists: ReadonlyArray<readonly Entry[]>): Entry[] {
  let total = 0;
  for (const list of lists) total += list.length;
  let inBlock = 0;
  for (const count of info.counts) inBlock += count;
  if (info.lastSeq - info.firstSeq + 1 !== inBlock) {
    const merged: Entry[] = [];
    for (const list of lists) for (const entry of list) merged.push(entry);
    return merged.sort((a, b) => a.timeUs - b.timeUs);
  }
  const slots = new Array<Entry | undefined>(inBlock).fill(undefined);
  for (const list of lists) for (const entry of list) slots[entry.seq! - info.firstSeq] = entry;
  if (total === inBlock) return slots as Entry[];
  const merged: Entry[] = [];
  for (const entry of slots) if (entry !== undefined) merged.push(entry);
  return merged;
}

/** The entry with this time_us among entries in ascending time_us. */
function findByTime(entries: readonly Entry[], timeUs: number): Entry | undefined {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid]!.timeUs < timeUs) low = mid + 1; // mid < high <= entries.length
    else high = mid;
  }
  return entries[low]?.timeUs === timeUs ? entries[low] : undefined;
}
