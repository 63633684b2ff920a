import type { Database } from 'lmdb';
import type { Entry } from '../events/index.ts';
import { copyRecords, decodeRecords, findRecord } from './codec.ts';
import type { Dictionaries } from './dictionaries.ts';
import { Lease, SlabPool, type Slab } from './slabs.ts';

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
 * A block partition that cannot be read back: its frame fails zstd's checksum (its bytes were
 * damaged on disk: LMDB keeps no checksums of its own) or is missing. Its events are lost to
 * readers; the error names them, so that a reader can say which and resume after them.
 */
export class DamagedBlockError extends Error {
  constructor(
    readonly first: number,
    readonly end: number,
    reason: string,
    /**
     * LMDB failed nothing in the read that found it (the frame was read, then failed zstd's
     * checksum; or the events are a damaged tail run's, named without a read): the read
     * transaction is sound. Otherwise (MDB_PAGE_NOTFOUND) LMDB marked it failed.
     */
    readonly transactionSound = false,
  ) {
    super(`events with time_us ${first} to ${end} are in a damaged block of the buffer and cannot be read (${reason})`);
  }
}

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

/** A decompressed partition: its bytes (in `slab` when decompressed for a merge alone and small enough for one), and its entries if kept. */
interface Decompressed {
  bytes: Buffer;
  slab?: Slab;
  entries?: Entry[];
}

/** A whole block's merged events, and the slabs their JSON are views of (pinned while kept). */
interface Merge {
  /** The block's end. */
  end: number;
  entries: Entry[];
  slabs: Slab[];
}

/**
 * Reads blocks' partitions. Partitions read alone (a collection filter's, an index lookup's) are
 * kept in a byte-bounded LRU cache shared by every reader, each in a buffer of its own (in a
 * shared slab one would keep the whole slab alive), their entries beside their bytes once
 * decoded; an index lookup decodes just its event. A whole block's partitions are decompressed
 * into reused slabs (slabs.ts) for its merge alone, and merges are kept only while a named replay
 * has yet to read them, plus the newest (WHOLE_BLOCKS_KEPT), not through the cache:
 * a full replay through the 64 MiB cache kept ~70 slabs pinned and spent about two thirds of its
 * time collecting garbage (bench/replay-full's scan: 0.3 M against 0.8–0.9 M events per
 * CPU-second without), for hits only concurrent replays in the same blocks have.
 *
 * A merge's entries' JSON are views of slabs, so merged() takes the Lease of the read it serves
 * and pins there the slabs of what it returns: the entries stay valid until the lease is released.
 */
export class BlockReader {
  readonly #cache = new Map<string, Decompressed>();
  /**
   * Whole blocks' merges kept, in the order they were made (see WHOLE_BLOCKS_KEPT); the last one
   * is kept whoever reads, since its reader most likely reads on in it. An array, not a Map: V8
   * moves a long-lived Map's table to the old generation, and each table a Map outgrows or
   * compacts keeps pointing at the values it held, so every merge a Map had held stayed alive
   * through young collections until a full one (bench/replay-full's JSON client: ~22 % of what
   * it allocated survived each young collection, nearly all of it decoded events).
   */
  readonly #wholeBlocks: Merge[] = [];
  /** Replays reading block after block: where each one's last read ended, and when (see readerAt). */
  readonly #readers = new Map<number, { position: number; atMs: number }>();
  /** When #readers was last looked through for readers gone quiet (READER_TTL_MS). */
  #readersCheckedMs = 0;
  readonly #slabs = new SlabPool();
  #cachedBytes = 0;
  #partitionsRead = 0;

  constructor(
    private readonly blocks: Database<Buffer, BlockKey>,
    private readonly dictionaries: Dictionaries,
    private readonly cacheBytes: number,
    /** Milliseconds on a monotonic clock, for forgetting quiet readers (READER_TTL_MS). */
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Partitions read from LMDB and decompressed so far, for any purpose (cache hits and kept merges read none). */
  get partitionsRead(): number {
    return this.#partitionsRead;
  }

  /** A lease for one read's entries (see Lease). */
  lease(): Lease {
    return new Lease(this.#slabs);
  }

  /** One partition's events, oldest first (kept in the cache: their bytes are the partition's own, valid for as long as anyone holds them). */
  part(end: number, info: BlockInfo, part: number): Entry[] {
    const cached = this.#cached(end, info, part);
    return (cached.entries ??= decodeRecords(cached.bytes));
  }

  /**
   * One partition's events for a caller that reads the block once (retention removing it, the
   * index rebuild): from the cache if there, otherwise decompressed for the caller alone. In the
   * cache they would push out the partitions filtered replays keep coming back to.
   */
  partOnce(end: number, info: BlockInfo, part: number): Entry[] {
    const cached = this.#cache.get(`${end}/${part}`);
    if (cached) return (cached.entries ??= decodeRecords(cached.bytes));
    return decodeRecords(this.#decompress(end, info, part, (size) => ({ bytes: Buffer.allocUnsafeSlow(size) })).bytes);
  }

  /** The partition's event with this time_us, if it holds one. */
  find(end: number, info: BlockInfo, part: number, timeUs: number): Entry | undefined {
    const cached = this.#cached(end, info, part);
    return cached.entries ? findByTime(cached.entries, timeUs) : findRecord(cached.bytes, timeUs);
  }

  /** One partition's events for a whole block's merge: from the cache if a reader put it there, otherwise decompressed into a slab the lease pins, for the merge alone. */
  #decodedOnce(end: number, info: BlockInfo, part: number, lease: Lease): Decompressed & { entries: Entry[] } {
    const hit = this.#hit(end, part);
    if (hit) return { ...hit, entries: hit.entries ?? decodeRecords(hit.bytes) };
    const decompressed = this.#decompress(end, info, part, (size) => this.#slabs.take(size));
    // take() pinned the slab once; from here the lease (and a kept merge) hold it.
    lease.hold(decompressed.slab);
    if (decompressed.slab) this.#slabs.unpin(decompressed.slab);
    return { ...decompressed, entries: decodeRecords(decompressed.bytes) };
  }

  #cached(end: number, info: BlockInfo, part: number): Decompressed {
    const hit = this.#hit(end, part);
    if (hit) return hit;
    // A partition kept in the cache gets a buffer of its own: in a shared slab it would keep the
    // whole slab alive, and the cache's byte bound would no longer bound its memory.
    const decompressed: Decompressed = this.#decompress(end, info, part, (size) => ({ bytes: Buffer.allocUnsafeSlow(size) }));
    this.#cache.set(`${end}/${part}`, decompressed);
    this.#cachedBytes += decompressed.bytes.byteLength;
    for (const [key, value] of this.#cache) {
      if (this.#cachedBytes <= this.cacheBytes) break;
      this.#evict(key, value);
    }
    return decompressed;
  }

  #hit(end: number, part: number): Decompressed | undefined {
    const id = `${end}/${part}`;
    const hit = this.#cache.get(id);
    if (hit) {
      this.#cache.delete(id);
      this.#cache.set(id, hit);
    }
    return hit;
  }

  /** A partition's frame decompressed into what `allocate` gives; one that cannot be is a DamagedBlockError. */
  #decompress<Out extends { bytes: Buffer }>(end: number, info: BlockInfo, part: number, allocate: (size: number) => Out): Out {
    const frame = this.#frame(end, part);
    let frameRead = false;
    const read = () => {
      const bytes = frame();
      frameRead = true;
      return bytes;
    };
    try {
      return this.dictionaries.decompress(read, info.dict, allocate);
    } catch (err) {
      throw new DamagedBlockError(info.first, end, (err as Error).message, frameRead);
    }
  }

  /** Reads a partition's frame into LMDB's reused read buffer (no allocation, no second copy): it must be decompressed before any other read. */
  #frame(end: number, part: number): () => Uint8Array {
    return () => {
      this.#partitionsRead++;
      const frame = this.blocks.getBinaryFast([end, part]);
      if (!frame) throw new Error(`block ${end} lacks its partition ${part}`);
      // The reused buffer's `length` is the value's, its byteLength the buffer's: native code reads the latter.
      return new Uint8Array(frame.buffer, frame.byteOffset, frame.length);
    };
  }

  #evict(id: string, cached: Decompressed): void {
    this.#cache.delete(id);
    this.#cachedBytes -= cached.bytes.byteLength;
  }

  /**
   * The events of the given partitions of a block, merged in time_us order. A whole block's
   * merge is kept while a named replay has yet to read past it, and the newest whoever reads
   * (WHOLE_BLOCKS_KEPT): a replay reads a block in several batches, and concurrent replays from
   * old cursors read the same blocks.
   */
  merged(end: number, info: BlockInfo, parts: readonly number[], lease: Lease): Entry[] {
    const onlyPart = parts.length === 1 ? parts[0] : undefined;
    if (onlyPart !== undefined) return this.part(end, info, onlyPart);
    const whole = parts.length === info.parts.length;
    if (whole) {
      // Readers gone quiet are forgotten on hits too, not only when a block is merged; before the
      // look-up, so a merge found is still pinned when the lease holds its slabs (dropped after,
      // its slabs could go back to the pool and be refilled under the entries returned).
      if (this.nowMs() - this.#readersCheckedMs > READER_CHECK_MS) this.#dropMergesReadPast();
      const hit = this.#wholeBlocks.find((merge) => merge.end === end);
      if (hit) {
        for (const slab of hit.slabs) lease.hold(slab);
        return hit.entries;
      }
    }
    if (!whole) return mergeParts(info, parts.map((part) => this.part(end, info, part)));
    // A whole block's partitions are decompressed and decoded for the merge alone (see the class
    // note); the merge pins their slabs while it is kept.
    const decoded = parts.map((part) => this.#decodedOnce(end, info, part, lease));
    const merge: Merge = { end, entries: mergeParts(info, decoded.map((part) => part.entries)), slabs: [] };
    for (const { slab } of decoded) {
      if (!slab || merge.slabs.includes(slab)) continue;
      merge.slabs.push(slab);
      slab.pins++;
    }
    this.#wholeBlocks.push(merge);
    this.#dropMergesReadPast();
    if (this.#wholeBlocks.length > WHOLE_BLOCKS_KEPT) this.#dropFarthestAhead();
    return merge.entries;
  }

  /**
   * Over the bound, the merge farthest ahead goes (but the newest): the trailing replay reaches
   * the nearest ones first. Dropping the oldest made instead dropped exactly those whenever a
   * replay was more than WHOLE_BLOCKS_KEPT blocks behind the leader, so it shared none and the
   * leader's last merges stayed pinned for nobody.
   */
  #dropFarthestAhead(): void {
    const merges = this.#wholeBlocks;
    let farthest = 0;
    for (let i = 1; i < merges.length - 1; i++) if (merges[i]!.end > merges[farthest]!.end) farthest = i;
    this.#unpin(merges.splice(farthest, 1)[0]!);
  }

  /**
   * Replay `reader` (any number naming it, a subscriber's id) read whole blocks up to `position`
   * and reads on from there: the merges of blocks after it are kept for it. A reader not heard
   * from for READER_TTL_MS is forgotten (it left, or reads something else now).
   */
  readerAt(reader: number, position: number): void {
    // Updated in place: a new object per read would be one more young object the Map's old table points at.
    const known = this.#readers.get(reader);
    if (known) {
      known.position = position;
      known.atMs = this.nowMs();
    } else {
      this.#readers.set(reader, { position, atMs: this.nowMs() });
    }
    this.#dropMergesReadPast();
  }

  /** Replay `reader` reads no more whole blocks (it reached the tail, or reads by filter). */
  readerDone(reader: number): void {
    if (this.#readers.delete(reader)) this.#dropMergesReadPast();
  }

  /** Drops the merges every reader has read past, but the newest (see WHOLE_BLOCKS_KEPT). */
  #dropMergesReadPast(): void {
    const now = this.nowMs();
    this.#readersCheckedMs = now;
    let trailing = Infinity;
    // forEach, not for…of over entries: that made a [key, value] array per reader per read.
    this.#readers.forEach((known, reader) => {
      if (now - known.atMs > READER_TTL_MS) this.#readers.delete(reader);
      else if (known.position < trailing) trailing = known.position;
    });
    const merges = this.#wholeBlocks;
    let kept = 0;
    for (let i = 0; i < merges.length; i++) {
      const merge = merges[i]!;
      if (merge.end > trailing || i === merges.length - 1) merges[kept++] = merge;
      else this.#unpin(merge);
    }
    merges.length = kept;
  }

  #unpin(merge: Merge): void {
    for (const slab of merge.slabs) this.#slabs.unpin(slab);
  }

  /** Forgets a block's cached partitions (retention removed it). */
  forget(end: number, info: BlockInfo): void {
    const at = this.#wholeBlocks.findIndex((merge) => merge.end === end);
    if (at >= 0) this.#unpin(this.#wholeBlocks.splice(at, 1)[0]!);
    for (const part of info.parts) {
      const id = `${end}/${part}`;
      const hit = this.#cache.get(id);
      if (hit) this.#evict(id, hit);
    }
  }
}

/**
 * Whole blocks whose merged event lists are kept at most. A merge is kept only while a replay
 * that said who it is (readerAt) has yet to read past its block, and the newest one whoever made
 * it (a replay reads a block in two batches or so): concurrent replays from old cursors, which
 * drift apart by tens of blocks, share the merges between the trailing one and the leader, while
 * a lone replay keeps one or two; past this bound the merges nearest the trailing replay stay.
 * Each kept event is one more object every young collection copies: keeping the last 4 merges
 * instead of 32, whoever would read them, made one replay's scan 2.6× cheaper but twenty replays
 * at once 2.9× dearer (each decompressing its own blocks; bench/replay-full, README "Full replay
 * to one client"). A kept list pins the slabs its events are views of: up to this many blocks'
 * worth of slabs besides the partition cache's bytes.
 */
const WHOLE_BLOCKS_KEPT = 32;
/** A replay that has not read for this long no longer holds merges back (a slow one only merges again). */
const READER_TTL_MS = 10_000;
/** Hits look for quiet readers at most this often (a hit is otherwise a few comparisons). */
const READER_CHECK_MS = 1_000;

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
