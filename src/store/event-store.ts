import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { TransactionFlags, type Database, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import type { Entry } from '../events/index.ts';
import { BlockReader, compressPartition, DamagedBlockError, partitionBlock, type BlockInfo, type BlockKey } from './blocks.ts';
import { encodeRecords, recordSize } from './codec.ts';
import { collect, ReadLeases, readStored, type ReadOptions, type ReadResult } from './disk-reads.ts';
import { Dictionaries } from './dictionaries.ts';
import { POSTING_BYTES, Postings, timeOfPosting } from './did-keys.ts';
import { openEnvironment, openMeta, openTables, type BufferLocation } from './environment.ts';
import { HotLog } from './hot-log.ts';
import { lockDataDir, type DataDirLock } from './data-dir-lock.ts';
import { assertFreeSpace } from './free-space.ts';
import { assertLmdbFile } from './lmdb-file.ts';
import { checkPreviousRun, Run, type PreviousRun } from './run-marker.ts';
import { closingRanges, ReasonsSaid, UnreadableBufferError } from './read-errors.ts';
import { SealedReader, type IndexGap, type ReadPlanCounts } from './sealed-reads.ts';
import { DamagedStateError, META, readDidIndexMeta, readMeta, readPartitions } from './stored-state.ts';
import { readRun, storedRun, type LostEvents } from './tail-runs.ts';

export interface UpstreamCursor {
  url: string;
  /** Resume after this seq: every frame at or below it is done (stored, skipped or judged). */
  seq: number;
  /**
   * Set while an earlier stage held messages back (verification waiting for a repo's key) and
   * later frames went ahead: the frames above `seq` up to `through` are done too, except the held
   * repos' messages ([did, its lowest held seq]), so that a restart, which reads again from `seq`,
   * stores only those (Ingester).
   */
  through?: number;
  held?: [did: string, seq: number][];
}

export interface Batch {
  entries: Entry[];
  /** The upstream position these entries complete; undefined when no frame advanced it. */
  cursor?: UpstreamCursor;
  /** Last commit rev per DID among the batch's commits. */
  revs: Map<string, string>;
}

export interface StoreSpan {
  oldestTimeUs: number | undefined;
  newestTimeUs: number | undefined;
  eventCount: number;
  /** Bytes of LMDB pages the events occupy, all-in: blocks, directory, tail and indexes. */
  bytes: number;
}

export interface EventStoreOptions {
  dataDir: string;
  hotLogBytes: number;
  readOnly?: boolean;
  /**
   * Flush every commit to disk as it happens (this class's default; the gateway's --fsync is off
   * unless asked: see the README's Design) with LMDB's overlapping sync, so a power loss never
   * tears the buffer, at a few ms per commit. Without it a commit survives a killed
   * process, the buffer is synced every second in the background, and a buffer a machine crash
   * may have torn is set aside at the next start (run-marker.ts).
   */
  fsync?: boolean;
  /** zstd dictionary new blocks are compressed with (kept in the buffer: see dictionaries.ts). */
  dictionary?: Buffer;
  /** Events per block (default 1024). */
  blockEvents?: number;
  /** Decompressed block partitions kept in memory for readers (default 64 MiB). */
  blockCacheBytes?: number;
  /** LMDB map size (default: lmdb-js's, grown as needed, each growth a new map: see mapSizeFor). */
  mapSizeBytes?: number;
  logger?: Logger;
  /** Milliseconds on a monotonic clock, by which quiet replay readers are forgotten and index rebuilds counted in their window (default performance.now; tests move it). */
  nowMs?: () => number;
  /** Postings a read takes of each wanted DID's index range (default DID_POSTINGS_PER_READ; tests make it small). */
  didPostingsPerRead?: number;
}

/** A tail run's records are at most this long, plus one event (see #tailDb). */
const TAIL_RUN_BYTES = 32 * 1024;
const COMMIT_WITHOUT_WAITING_FOR_FLUSH = TransactionFlags.ABORTABLE | TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH;
/** Per-DID index postings removed per transaction when retention removes a block (~2–3 ms each). */
const INDEX_TRIM_CHUNK = 128;
/**
 * Per-DID index postings a seal writes per step, in a transaction of their own: ~0.5 ms (256 took
 * ~2.2 ms of CPU in bench/replay-live's 1 M-event buffer, a step every live commit could wait
 * behind; the seal's postings cost as much in all either way).
 */
const INDEX_WRITE_CHUNK = 64;
/**
 * A tail of this many full blocks is sealed at once, eight blocks per transaction group
 * (SEAL_GROUP_BLOCKS), instead of a block at a time in steps: a catch-up burst, or commits
 * faster than turns (a loop that never yields one). ~5 s behind at 2,000 events/s, which the
 * steps never fall at the live rate.
 */
const SEAL_AT_ONCE_BLOCKS = 10;
/**
 * Blocks sealed together when sealing at once. Their postings go into the per-DID index in one
 * pass in key order, so postings of different blocks that land on the same B-tree page share its
 * copy: at 1 M events the store wrote ~1.4× the events per CPU-second with 8 as with 1 (16 gained
 * nothing more). Live, a block is sealed alone, in steps: eight blocks' start, sort and final
 * transaction made single steps of 5–20 ms.
 */
const SEAL_GROUP_BLOCKS = 8;
/** Milliseconds of seal and index-rebuild steps per turn of the event loop (see EventStore#continueSteps). */
const SEAL_TURN_MS = 1;
/**
 * Blocks whose postings an index rebuild writes in one key-ordered pass (read one block per step),
 * so postings of different blocks that land on the same B-tree page share its copy, as sealing
 * at once does (SEAL_GROUP_BLOCKS).
 */
const REBUILD_GROUP_BLOCKS = 8;
/** Postings a rebuild step writes between looks at the clock (its transaction ends once SEAL_TURN_MS is spent). */
const REBUILD_WRITE_CHUNK = 32;
/**
 * DIDs whose postings a rebuild step removes when it clears the index, in a transaction (clearing
 * it in one took 854 ms at 5 M events: one turn of the event loop, live sends waiting on it).
 */
const REBUILD_CLEAR_CHUNK = 128;
/**
 * The stored layout's version: 2 added seq; 3 stores events in compressed blocks with per-DID
 * and per-collection indexes; 4 keeps the per-DID index as dupsort postings (did-keys.ts). A
 * buffer without one was written by contrail before version 2. The tail in runs (#tailDb) kept
 * the number: a tail of one value per event, as earlier format-4 buffers hold it, is a tail of
 * runs of one event each.
 */
const FORMAT = 4;
/**
 * Partition 0 holds the repo-level events (identity, account, sync); collections get 1, 2, … as
 * first seen, up to 65,534; any further collections share the last partition, which every
 * collection filter reads.
 */
const NO_COLLECTION = 0;
const SHARED_PARTITION = 0xffff;
/** Index of the first entry with time_us > position. */
function firstAfter(entries: readonly Entry[], position: number): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid]!.timeUs <= position) low = mid + 1; // mid < high <= entries.length
    else high = mid;
  }
  return low;
}

function sumOf(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum;
}

/**
 * LMDB keys are at most 1978 bytes but a DID may be 2048 characters, so long DIDs are keyed by
 * their SHA-256 (no DID starts with "sha256:"). Without this, one commit from such a DID would
 * fail its batch's transaction on every retry and stall ingest for good.
 */
const MAX_PLAIN_REV_KEY = 1024;
function revKey(did: string): string {
  return did.length <= MAX_PLAIN_REV_KEY ? did : `sha256:${createHash('sha256').update(did).digest('hex')}`;
}

/** Blocks being sealed in steps (see EventStore#sealStep): what is done of them so far. */
interface SealInProgress {
  entries: readonly Entry[];
  /** The blocks, oldest first, with their compressed partitions so far (parallel to info.parts). */
  blocks: Array<ReturnType<typeof partitionBlock> & { frames: Buffer[] }>;
  /** Collections first numbered for these blocks and not stored yet. */
  added: string[];
  /** Every block's postings, written in one pass in key order. */
  postings: Postings;
  postingsWritten: number;
}

/**
 * The per-DID index: `ok`; `bypassed` (found inconsistent: DID-filtered reads scan the blocks,
 * and the next writable start rebuilds it); `rebuilding` (rebuilt in the background, in steps,
 * while DID-filtered reads scan); `abandoned` (found inconsistent again after
 * DID_INDEX_MAX_REBUILDS rebuilds within DID_INDEX_REBUILD_WINDOW_MS: not used nor rebuilt again
 * until the next writable start).
 */
export type DidIndexState = 'ok' | 'bypassed' | 'rebuilding' | 'abandoned';

/**
 * Rebuilds of the per-DID index a store runs within DID_INDEX_REBUILD_WINDOW_MS; found inconsistent
 * once more, the index is abandoned. A sound disk and code find it inconsistent rarely, if ever; one
 * that breaks again and again (a bug, a failing disk) would otherwise be rebuilt for ever, each
 * rebuild rewriting the whole index (minutes at millions of events) while DID replays scan anyway.
 */
const DID_INDEX_MAX_REBUILDS = 3;
const DID_INDEX_REBUILD_WINDOW_MS = 24 * 3_600_000;

/** A per-DID index rebuild in progress (see EventStore#rebuildStep). */
interface IndexRebuild {
  /** Where clearing the index goes on (the DID hash it reached), until it is cleared; then undefined. */
  clearFrom: Buffer | undefined;
  /**
   * The rebuild writes the postings of the blocks ending at or below this, those the directory
   * held once the index was cleared; blocks sealed later write their own. 0 until then.
   */
  through: number;
  /** The newest block whose postings are written (or that was trimmed before the rebuild read it). */
  done: number;
  /** The group of blocks being read, and their postings so far. */
  group: Array<{ end: number; info: BlockInfo }>;
  read: number;
  postings: Postings | undefined;
  written: number;
  /** Blocks read so far whose events, or some of them, get no postings: they are damaged on disk. */
  gaps: IndexGap[];
  started: number;
}

/** Every partition is compressed and every posting written: the blocks' own transaction is next. */
function onlyBlocksLeft(seal: SealInProgress): boolean {
  return seal.postingsWritten === seal.postings.count && seal.blocks.every((block) => block.frames.length === block.byPart.length);
}

export class EventStore {
  readonly hotLog: HotLog;
  /** Where the buffer is and how its environment was opened (a replay worker thread opens it the same way). */
  readonly location: BufferLocation;
  /** Bytes of decompressed block partitions kept for readers (each replay worker thread keeps as many). */
  readonly blockCacheBytes: number;
  readonly #root: RootDatabase;
  /**
   * Committed events not yet sealed into a block, in runs of consecutive events: the time_us of
   * a run's newest event → its events' records (codec.ts). A commit writes its events as one run,
   * or a few of at most TAIL_RUN_BYTES (one put per run, not per event; LMDB finds free room for
   * small values more easily than for a large commit's megabyte). A block seals a run of events
   * that need not end where a tail run does: a run whose newest event is sealed is removed, one
   * that is partly sealed stays until it is sealed whole, and readers skip its events at or
   * below the newest block. (Retention writes a partly trimmed run again with what it keeps.)
   */
  readonly #tailDb: Database<Buffer, number>;
  /** The keys of #tailDb (each a run's newest time_us), ascending. */
  readonly #tailRuns: number[] = [];
  readonly #blocks: Database<Buffer, BlockKey>;
  readonly #directory: Database<BlockInfo, number>;
  /** A block's last seq → its end, so a seq finds its block in one seek. */
  readonly #blockSeqs: Database<number, number>;
  /** The per-DID index (did-keys.ts); the per-collection index is the blocks' partitioning. */
  readonly #byDid: Database<Buffer, Buffer>;
  readonly #partitions: Database<number, string>;
  readonly #revs: Database<string, string>;
  readonly #meta: Database<unknown, string>;
  readonly #dictionaries: Dictionaries;
  readonly #blockReader: BlockReader;
  readonly #leases = new ReadLeases();
  readonly #sealed: SealedReader;
  readonly #listeners: Array<(entries: readonly Entry[]) => void> = [];
  /** The tail's events in memory, oldest first (readers and the next block take them from here). */
  #tail: Entry[] = [];
  readonly #partOfCollection = new Map<string, number>();
  readonly #collectionOfPart: Array<string | null> = [null];
  readonly #blockEvents: number;
  #sealedCount = 0;
  /** time_us of the newest sealed event (0 before the first block). */
  #sealedUpTo = 0;
  #sealFailing = false;
  /** Seals that failed since the store opened (each retried after the next commit). */
  #failedSeals = 0;
  /** The block(s) being sealed, if any (from the tail's oldest events; live one block, at once up to SEAL_GROUP_BLOCKS). */
  #sealing: SealInProgress | undefined;
  /** A turn to run the seal's or the rebuild's next steps is queued (one at a time: two would share the steps' budget per turn twice). */
  #stepQueued = false;
  /** Whether a commit is due in this turn of the event loop (see giveWayTo). */
  #commitDue: () => boolean = () => false;
  /** The last turn's seal or rebuild steps gave way to a commit. */
  #sealGaveWay = false;
  /** close() was called: a block's index postings still being removed are left (never read). */
  #closed = false;
  #didIndex: DidIndexState;
  /** The per-DID index rebuild in progress, if any (a writable store whose index was found inconsistent). */
  #rebuild: IndexRebuild | undefined;
  /** Events lost in tail runs a start found damaged, oldest first, until retention passes them (tail-runs.ts). */
  readonly #lost: LostEvents[];
  /** Blocks the per-DID index has no entries for (the last rebuild could not read them), oldest first; DID-filtered reads read them whole. */
  #indexGaps: IndexGap[];
  /** Ends of the blocks reads found damaged (DamagedBlockError), each logged once. */
  readonly #damagedBlocks = new Set<number>();
  /** Reasons reads failed for (UnreadableBufferError), each logged once. */
  readonly #readFailures = new ReasonsSaid();
  /** Reads that failed so (UnreadableBufferError), each counted. */
  #unreadableReads = 0;
  /** Reasons replay workers' reads failed for (workerReadFailed), each logged once. */
  readonly #workerReadFailures = new ReasonsSaid();
  /** Replay workers' reads that failed so, each counted. */
  #workerUnreadableReads = 0;
  /** Times this store found the per-DID index inconsistent (each bypasses it and, writable, starts a rebuild). */
  #didIndexInconsistencies = 0;
  /** Writes of the per-DID index's inconsistency mark LMDB refused (each leaves the index bypassed, not rebuilt). */
  #didIndexMarkWriteFailures = 0;
  /**
   * The per-DID index rebuilds the buffer counts (META.didIndexRebuilds, which only this store
   * writes): kept here so that a worker's report is judged without a read of meta (reportDidIndexInconsistent).
   */
  #didIndexRebuilds: number;
  /** When the rebuilds of the last DID_INDEX_REBUILD_WINDOW_MS started (nowMs), oldest first. */
  #rebuildStarts: number[] = [];
  readonly #nowMs: () => number;
  #lastTimeUs: number;
  #lastSeq: number;
  /** Seqs this buffer gives its events are above this: those a torn buffer set aside in its place gave out (run-marker.ts). */
  #seqFloor: number;
  /** Likewise the time_us its own clock gives: those the torn buffer gave out (run-marker.ts). */
  #timeUsFloor: number;
  #trimmedUpTo: number;
  #cursor: UpstreamCursor | undefined;
  readonly #writable: boolean;
  readonly #logger: Logger | undefined;
  /** A writable buffer's run marker and, without fsync, its background sync. */
  #run: Run | undefined;
  readonly #lock: DataDirLock | undefined;
  /** Block partitions this store's reads have decompressed so far (replay workers' reads apart). */
  get partitionsRead(): number {
    return this.#blockReader.partitionsRead;
  }

  /** How many reads of sealed blocks went by the DID index, by partition, or through everything. */
  get readPlans(): Readonly<ReadPlanCounts> {
    return this.#sealed.plans;
  }

  /** What the previous run left behind, for the gateway to report. */
  readonly previousRun: PreviousRun = { unclean: false };

  constructor(options: EventStoreOptions) {
    const fsync = options.fsync ?? true;
    this.#writable = !options.readOnly;
    this.#logger = options.logger;
    this.#blockEvents = options.blockEvents ?? 1024;
    if (this.#writable) {
      assertFreeSpace(options.dataDir);
      makeDataDir(options.dataDir);
      // Before anything else: a second gateway must not even read the first one's run marker.
      this.#lock = lockDataDir(options.dataDir);
      this.previousRun = this.#releasingLockOnError(() => checkPreviousRun(options.dataDir));
    }
    this.#releasingLockOnError(() => assertLmdbFile(join(options.dataDir, 'data.mdb')));
    this.location = { dataDir: options.dataDir, readOnly: !this.#writable, fsync, ...(options.mapSizeBytes ? { mapSizeBytes: options.mapSizeBytes } : {}) };
    this.#root = this.#releasingLockOnError(() => openEnvironment(this.location));
    this.#meta = openMeta(this.#root);
    // A refused buffer is closed again and the data dir's lock released: a program that runs the
    // gateway in-process and starts it again is not refused as a second contrail.
    let newest: number | undefined;
    try {
      this.#checkFormat(options.dataDir);
      const tables = openTables(this.#root);
      this.#tailDb = tables.tail;
      this.#blocks = tables.blocks;
      this.#directory = tables.directory;
      this.#blockSeqs = tables.blockSeqs;
      this.#byDid = tables.byDid;
      this.#partitions = tables.partitions;
      this.#revs = tables.revs;
      this.#dictionaries = new Dictionaries(this.#root, options.dictionary, this.#writable);
      for (const [collection, part] of readPartitions(this.#partitions)) {
        this.#partOfCollection.set(collection, part);
        this.#collectionOfPart[part] = collection;
      }
      this.#trimmedUpTo = readMeta(this.#meta, META.trimmedUpTo) ?? 0;
      this.#lost = (readMeta(this.#meta, META.tailDamage) ?? []).filter(([, end]) => end > this.#trimmedUpTo);
      const lostBefore = this.#lost.length;
      let newestBlock: BlockInfo | undefined;
      let blockFloor = this.#trimmedUpTo;
      // The ends of the blocks whose events are lost (their frames' keys), and the sound entries,
      // which a start that found a key changed writes again (#repairDamage).
      const lostBlocks: number[] = [];
      const soundBlocks: Array<[end: number, info: BlockInfo]> = [];
      let keyChanged = false;
      const entries = this.#directoryEntries();
      for (const [index, { end, info, error }] of entries.entries()) {
        if (error !== undefined) {
          // Without its entry the block cannot be read (which partitions, which dictionary): its events are lost.
          lostBlocks.push(end);
          this.#eventsLost([blockFloor + 1, end], (error as Error).message, "a block's directory entry in the buffer cannot be read (its bytes on disk changed: check the disk)");
          blockFloor = end;
          continue;
        }
        // A key, outside the entry, that changed in place stays where it was in its LMDB page, out of
        // order with a neighbour. The block's frames, keyed by its end, are the first after the block
        // before it: a key that is not their end changed, and the block's events are named lost up
        // to there. (Read only then: the frames' table is the bulk of the file, and a start does not
        // depend on its pages.)
        const outOfOrder = end <= (entries[index - 1]?.end ?? -Infinity) || end >= (entries[index + 1]?.end ?? Infinity);
        const framesEnd = info === undefined || outOfOrder ? this.#firstBlockEndAfter(blockFloor) : end;
        if (info === undefined || framesEnd !== end) {
          keyChanged = true;
          if (framesEnd === undefined) continue;
          lostBlocks.push(framesEnd);
          this.#eventsLost([blockFloor + 1, framesEnd], `the block's frames end at time_us ${framesEnd}`, `a block's directory key in the buffer, time_us ${end}, is out of its LMDB page's order (its bytes on disk changed: check the disk)`);
          blockFloor = framesEnd;
          continue;
        }
        soundBlocks.push([end, info]);
        for (const count of info.counts) this.#sealedCount += count;
        this.#sealedUpTo = end;
        blockFloor = end;
        newestBlock = info;
      }
      if (this.#writable && newestBlock && newestBlock.dict !== this.#dictionaries.current) {
        this.#logger?.warn(
          { dictionary: this.#dictionaries.describe(this.#dictionaries.current), before: this.#dictionaries.describe(newestBlock.dict) },
          'the zstd dictionary (--zstd-dictionary) is not the one the buffer\'s newest blocks were compressed with: new blocks use it; ' +
            'the blocks already stored stay readable, since the buffer keeps every dictionary it used',
        );
      }
      // A run outlives the block that sealed its first events, and that block may since have been
      // removed by retention: what it holds at or below trimmedUpTo is gone, not unsealed.
      const tailFloor = Math.max(this.#sealedUpTo, this.#trimmedUpTo);
      let runFloor = tailFloor;
      /** The sound runs as stored, and whether any run was not: see #repairDamage. */
      const soundRuns: Array<[key: number, value: Buffer]> = [];
      let damagedRuns = false;
      for (const { key, value } of this.#tailDb.getRange()) {
        let entries: Entry[];
        // The run's newest event, which is its key unless the key's bytes changed on disk: the CRC-32 covers the records alone.
        let end = key;
        try {
          entries = readRun(value);
          end = entries.at(-1)?.timeUs ?? key;
          // Readers seek runs by their keys (a replay worker reads the tail from LMDB): one keyed below its events was passed over.
          if (end !== key) throw new Error(`a tail run keyed time_us ${key} holds events up to ${end}: its key changed on disk`);
        } catch (err) {
          damagedRuns = true;
          // Its events are lost: named to every reader from now on, never read as sound ones.
          if (end > tailFloor) {
            this.#eventsLost([runFloor + 1, end], (err as Error).message, 'a tail run of the buffer cannot be read (its bytes on disk changed: check the disk)');
          }
          runFloor = Math.max(runFloor, end);
          continue;
        }
        this.#tailRuns.push(key);
        soundRuns.push([key, value]);
        // A run partly sealed into a block whose directory entry was lost holds some of its events: lost with it.
        for (const entry of entries) if (entry.timeUs > tailFloor && !this.#lost.some(([first, last]) => entry.timeUs >= first && entry.timeUs <= last)) this.#tail.push(entry);
        runFloor = Math.max(runFloor, end);
      }
      this.#lost.sort((a, b) => a[0] - b[0]);
      if (this.#writable && (this.#lost.length !== lostBefore || lostBlocks.length > 0 || keyChanged || damagedRuns)) {
        this.#repairDamage(lostBlocks, keyChanged ? soundBlocks : undefined, damagedRuns ? soundRuns : undefined);
      }
      newest = Math.max(this.#tail.at(-1)?.timeUs ?? 0, this.#lost.at(-1)?.[1] ?? 0, this.#sealedUpTo) || undefined;
      this.#lastSeq = readMeta(this.#meta, META.lastSeq) ?? 0;
      // Kept apart from lastSeq, which a replication leader's numbering (commitAssigned) follows as it
      // is: only this buffer's own numbering (commit) starts above the floor.
      if (this.previousRun.seqCeiling) this.#meta.putSync(META.seqFloor, this.previousRun.seqCeiling);
      this.#seqFloor = readMeta(this.#meta, META.seqFloor) ?? 0;
      // The same for time_us: a leader's events (commitAssigned) are checked against lastTimeUs alone.
      if (this.previousRun.timeUsCeiling) this.#meta.putSync(META.timeUsFloor, this.previousRun.timeUsCeiling);
      this.#timeUsFloor = readMeta(this.#meta, META.timeUsFloor) ?? 0;
      this.#lastTimeUs = Math.max(readMeta(this.#meta, META.lastTimeUs) ?? 0, newest ?? 0);
      this.#cursor = readMeta(this.#meta, META.cursor);
      const indexMeta = readDidIndexMeta(this.#meta);
      this.#didIndex = indexMeta.bypassed ? 'bypassed' : 'ok';
      this.#didIndexRebuilds = indexMeta.rebuilds;
      this.#indexGaps = indexMeta.gaps.filter(([, end]) => end > this.#trimmedUpTo);
      if (indexMeta.damaged.length > 0) {
        // The index's own state, unlike the rest of meta, is rebuilt from the blocks with the index (#startRebuild, below), which writes it again.
        this.#logger?.error(
          { err: indexMeta.damaged.map((err) => err.message).join('; ') },
          this.#writable
            ? "the per-DID index's state in the buffer is damaged (check the disk): DID-filtered replays scan the blocks while the index is rebuilt in the background"
            : "the per-DID index's state in the buffer is damaged (check the disk): DID-filtered reads scan the blocks",
        );
      }
    } catch (err) {
      void this.#root.close();
      this.#lock?.release();
      throw err instanceof DamagedStateError ? damagedBuffer(options.dataDir, err) : err;
    }
    this.#nowMs = options.nowMs ?? (() => performance.now());
    this.hotLog = new HotLog(options.hotLogBytes, newest ?? 0);
    this.blockCacheBytes = options.blockCacheBytes ?? 64 * 1024 * 1024;
    this.#blockReader = new BlockReader(this.#blocks, this.#dictionaries, this.blockCacheBytes, options.nowMs);
    this.#sealed = new SealedReader(
      closingRanges(this.#directory),
      closingRanges(this.#byDid),
      this.#blockReader,
      (part) => this.#collectionOfPart[part],
      () => this.#sealedCount,
      () => this.#didIndex === 'ok',
      () => this.#trimmedUpTo,
      () => this.#indexGaps,
      (detail) => this.#didIndexInconsistent(detail),
      options.didPostingsPerRead,
    );
    if (this.#writable) {
      this.#run = new Run(options.dataDir, fsync, this.#root, { seq: Math.max(this.#lastSeq, this.#seqFloor), timeUs: this.timeUsFloor });
      this.#finishSeals();
      if (this.#didIndex === 'bypassed') this.#startRebuild();
    }
  }

  /** The newest time_us ever issued to a stored event. */
  get lastTimeUs(): number {
    return this.#lastTimeUs;
  }

  /**
   * The clock that stamps this buffer's own events (commit) continues above this: lastTimeUs, or
   * the newest time_us a torn buffer set aside in its place may have given out (run-marker.ts).
   */
  get timeUsFloor(): number {
    return Math.max(this.#lastTimeUs, this.#timeUsFloor);
  }

  /** Whether `timeUs` lies among the events a start found lost in a damaged tail run (tail-runs.ts): none of them can be shown. */
  inLostEvents(timeUs: number): boolean {
    return this.#lost.some(([first, end]) => timeUs >= first && timeUs <= end);
  }

  /**
   * The newest time_us a buffer set aside in this one's place (torn by a machine crash, see
   * run-marker.ts) may have given out, or 0 if none was: its events are gone from here.
   */
  get setAsideUpTo(): number {
    return this.#timeUsFloor;
  }

  /**
   * Likewise the newest seq the buffer set aside may have given out, or 0: this buffer's own
   * numbering (commit) continues above it, so no seq up to it names an event here, unless a
   * replication leader's numbering (commitAssigned) gave it again.
   */
  get setAsideSeqUpTo(): number {
    return this.#seqFloor;
  }

  /** The newest seq ever given to a stored event (0 before the first). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  get upstreamCursor(): UpstreamCursor | undefined {
    return this.#cursor;
  }

  /** Events at or below this time_us were removed by retention. */
  get trimmedUpTo(): number {
    return this.#trimmedUpTo;
  }

  /** What a reader in another thread needs to read the way this store would (see snapshot-reader.ts). */
  get indexState(): { sealedEvents: number; didIndexUsable: boolean } {
    return { sealedEvents: this.#sealedCount, didIndexUsable: this.#didIndex === 'ok' };
  }

  /** The per-DID index's state, and how many times this store found it inconsistent (metrics). */
  get didIndex(): { state: DidIndexState; inconsistencies: number } {
    return { state: this.#didIndex, inconsistencies: this.#didIndexInconsistencies };
  }

  /** Writes of the per-DID index's inconsistency mark LMDB refused, since the store opened (metrics). */
  get didIndexMarkWriteFailures(): number {
    return this.#didIndexMarkWriteFailures;
  }

  /** Reads of the buffer LMDB refused, or that broke on what they read (UnreadableBufferError), since the store opened (metrics). */
  get unreadableReads(): number {
    return this.#unreadableReads;
  }

  /** Replay workers' reads of the buffer that LMDB refused, or that broke on what they read (workerReadFailed), since the store opened (metrics). */
  get workerUnreadableReads(): number {
    return this.#workerUnreadableReads;
  }

  /**
   * LMDB refused a replay worker's read (a page damaged on disk), or it broke on what it read (an
   * UnreadableBufferError in the worker; not a damaged block's frame, which the main thread's read
   * of the block says, nor a fault of the worker's, which ReplayReads says): the main thread reads
   * that batch instead (ReplayReads), or the worker read around the page (the block directory's
   * last, SnapshotReader). Either may succeed where the worker's read did not (the tail, held here
   * in memory, is read from LMDB only by workers), so the failure is counted and said here, once per
   * reason (its numbers aside: ReasonsSaid), at error level.
   */
  workerReadFailed(reason: string): void {
    this.#workerUnreadableReads++;
    if (!this.#workerReadFailures.first(reason)) return;
    this.#logger?.error(
      { err: reason },
      "a replay worker's read of the buffer failed (its file may be damaged on disk: check the disk): its batch is read on the main thread, which holds the tail in memory, or around the page where it can",
    );
  }

  /** Committed events waiting in the tail for their block's seal, and seals that failed since the store opened (metrics). */
  get sealState(): { unsealedEvents: number; failedSeals: number } {
    return { unsealedEvents: this.#tail.length, failedSeals: this.#failedSeals };
  }

  /**
   * A reader in another thread found the per-DID index inconsistent, in a snapshot that counted
   * `indexRebuilds` (omitted: the index as it is now): as if this store had, unless the index was
   * rebuilt since (the report is about the index before it; a late one would start another whole
   * rebuild, towards abandoning it).
   */
  reportDidIndexInconsistent(detail: string, indexRebuilds?: number): void {
    if (indexRebuilds !== undefined && indexRebuilds < this.#didIndexRebuilds) return;
    this.#didIndexInconsistent(detail);
  }

  /**
   * The repo's last stored commit rev. A page of the revs table LMDB cannot read (damaged on disk)
   * throws an UnreadableBufferError: counted, said once, the read transaction renewed (#readFailed).
   */
  getRev(did: string): string | undefined {
    try {
      return this.#revs.get(revKey(did));
    } catch (err) {
      throw this.#unreadable(err, this.#lastTimeUs);
    }
  }

  onCommitted(listener: (entries: readonly Entry[]) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Seal steps give way to a commit due in the same turn of the event loop (`due`: the Ingester
   * read events it has not handed over yet). Both run in setImmediate and a seal's next step is
   * queued at the end of the turn before, so it would run first and every event read in that turn
   * would wait a step more before it is published; it runs in the next turn instead (once in a
   * row: a commit that keeps failing must not stop sealing).
   */
  giveWayTo(due: () => boolean): void {
    this.#commitDue = due;
  }

  /**
   * Commits the batch atomically, giving its events the next seqs; resolves once durable, after
   * readers can see it.
   */
  async commit(batch: Batch): Promise<void> {
    let seq = Math.max(this.#lastSeq, this.#seqFloor);
    for (const entry of batch.entries) entry.seq = ++seq;
    this.#write(batch);
  }

  /**
   * Commits events whose time_us and seq were assigned elsewhere (a replication leader), as
   * given. Both must increase strictly, from the store's last ones and within the batch; a batch
   * that breaks this is refused whole (nothing is written) with an error saying where.
   */
  async commitAssigned(batch: Batch): Promise<void> {
    let { lastTimeUs, lastSeq } = this;
    for (const entry of batch.entries) {
      if (entry.seq === undefined || !(entry.seq > lastSeq) || !(entry.timeUs > lastTimeUs)) {
        throw new Error(
          `commitAssigned: event (time_us ${entry.timeUs}, seq ${entry.seq}) does not follow (time_us ${lastTimeUs}, seq ${lastSeq}); both must increase strictly`,
        );
      }
      lastTimeUs = entry.timeUs;
      lastSeq = entry.seq;
    }
    this.#write(batch);
  }

  #write(batch: Batch): void {
    const { entries, cursor, revs } = batch;
    const newest = entries.at(-1);
    const lastTimeUs = newest ? newest.timeUs : this.#lastTimeUs;
    const lastSeq = newest ? newest.seq! : this.#lastSeq;
    this.#run?.reserve(lastSeq, lastTimeUs);
    // One allocation for the batch's records (per-event buffers cost more in GC than the copy),
    // its own (not a slice of Node's shared pool): the entries kept in memory point into it below.
    const records = encodeRecords(entries, Buffer.allocUnsafeSlow);
    // The tail runs: each ends at the first event that takes it to TAIL_RUN_BYTES, or at the last.
    const runKeys: number[] = [];
    const runEnds: number[] = [];
    let recordsEnd = 0;
    for (const entry of entries) {
      recordsEnd += recordSize(entry);
      if (recordsEnd - (runEnds.at(-1) ?? 0) >= TAIL_RUN_BYTES || entry === newest) {
        runKeys.push(entry.timeUs);
        runEnds.push(recordsEnd);
      }
    }
    // Committed here, on this thread: an event waits for no worker-thread round trip before
    // subscribers see it (that hop dominated ingest-to-client latency). Abortable, so an error
    // thrown while writing leaves nothing of the batch; the flush to disk overlaps what follows.
    this.#root.transactionSync(() => {
      runKeys.forEach((key, i) => this.#tailDb.putSync(key, storedRun(records.subarray(runEnds[i - 1] ?? 0, runEnds[i]))));
      for (const [did, rev] of revs) this.#revs.putSync(revKey(did), rev);
      if (cursor) this.#meta.putSync(META.cursor, cursor);
      this.#meta.putSync(META.lastTimeUs, lastTimeUs);
      this.#meta.putSync(META.lastSeq, lastSeq);
    }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
    if (cursor) this.#cursor = cursor;
    this.#lastTimeUs = lastTimeUs;
    this.#lastSeq = lastSeq;
    if (entries.length === 0) return;
    for (const key of runKeys) this.#tailRuns.push(key);
    // What the tail and the hot log keep of each event's JSON is its bytes in this batch's records.
    // Events are built in small buffers (Buffer.from, Buffer.allocUnsafe), which Node puts in its shared 8 KB pool
    // slabs, so a kept event would pin a whole slab that other, short-lived buffers filled (in
    // the soak, a 64 MiB hot log pinned 190 MB of slabs); a batch's buffer holds nothing else.
    recordsEnd = 0;
    for (const entry of entries) {
      recordsEnd += recordSize(entry);
      entry.json = records.subarray(recordsEnd - entry.json.byteLength, recordsEnd);
      this.#tail.push(entry);
    }
    this.hotLog.append(entries);
    for (const listener of this.#listeners) listener(entries);
    this.#sealFullBlocks();
  }

  /**
   * Starts sealing the tail's oldest block once it holds a full one; the seal runs in steps on
   * later turns of the event loop (#sealStep), so commits and live sends go between them. A tail
   * of SEAL_AT_ONCE_BLOCKS blocks (a catch-up burst's large commits, or commits faster than the
   * turns between them let the steps run) is sealed at once instead, eight blocks together, so
   * the unsealed tail stays bounded and a burst is sealed at the lowest cost per event. A failing seal (disk full) loses nothing: the events stay
   * in the tail, readable, and the seal is retried after the next commit.
   */
  #sealFullBlocks(): void {
    if (this.#closed) return;
    if (this.#tail.length >= SEAL_AT_ONCE_BLOCKS * this.#blockEvents) return this.#finishSeals();
    if (this.#sealing || this.#tail.length < this.#blockEvents) return;
    this.#trySealing(() => (this.#sealing = this.#startSeal(1)));
    this.#queueSteps();
  }

  #queueSteps(): void {
    if (this.#stepQueued || (!this.#sealing && !this.#rebuild)) return;
    this.#stepQueued = true;
    setImmediate(() => this.#continueSteps());
  }

  /**
   * Runs the seal's steps for about SEAL_TURN_MS of this turn (at least one: most partitions
   * compress in microseconds, and a turn per step would let replay slices stretch the seal until
   * the tail must be sealed at once); the last step, the largest, starts a turn of its own. With
   * no seal in progress, the turn's steps are an index rebuild's (#rebuildStep), if one runs.
   */
  #continueSteps(): void {
    this.#stepQueued = false;
    const seal = this.#sealing;
    if ((!seal && !this.#rebuild) || this.#closed) return;
    if (!this.#sealGaveWay && this.#commitDue()) {
      this.#sealGaveWay = true;
      return this.#queueSteps();
    }
    this.#sealGaveWay = false;
    const started = performance.now();
    if (!seal) return this.#continueRebuild(started);
    const done = this.#trySealing(() => {
      for (;;) {
        if (this.#sealStep(seal)) return true;
        if (onlyBlocksLeft(seal) || performance.now() - started >= SEAL_TURN_MS) return false;
      }
    });
    // A failed seal is retried after the next commit, not on every turn while the disk is full.
    if (done && !this.#sealFailing) this.#sealFullBlocks();
    // The seal's next steps, or the rebuild's, in the next turn.
    this.#queueSteps();
  }

  /** Seals, now, the block in progress and every full block the tail holds (a reopened buffer, close, retention of the tail). */
  #finishSeals(): void {
    this.#trySealing(() => {
      for (;;) {
        if (!this.#sealing) {
          if (this.#tail.length < this.#blockEvents) return true;
          this.#sealing = this.#startSeal(Math.min(SEAL_GROUP_BLOCKS, Math.floor(this.#tail.length / this.#blockEvents)));
        }
        while (!this.#sealStep(this.#sealing!)) {}
      }
    });
  }

  /** Runs a piece of sealing; an error drops the block in progress (its events stay in the tail) and is logged once. */
  #trySealing(piece: () => unknown): boolean {
    try {
      const result = piece();
      if (this.#sealFailing && !this.#sealing) this.#logger?.warn('sealing blocks works again');
      if (!this.#sealing) this.#sealFailing = false;
      return result !== false;
    } catch (err) {
      if (this.#sealing) this.#forgetNewPartitions(this.#sealing);
      this.#sealing = undefined;
      this.#failedSeals++;
      if (!this.#sealFailing) {
        this.#logger?.error({ err: (err as Error).message, tailEvents: this.#tail.length }, 'could not seal a block (disk full?); the events stay in the tail and sealing is retried after each commit');
      }
      this.#sealFailing = true;
      return true;
    }
  }

  /** Starts sealing the tail's oldest `count` blocks' worth of events. */
  #startSeal(count: number): SealInProgress {
    const entries = this.#tail.slice(0, count * this.#blockEvents);
    const added: string[] = [];
    const parts = entries.map((entry) => this.#partitionOf(entry, added));
    const postings = new Postings(entries.length);
    const blocks: SealInProgress['blocks'] = [];
    for (let from = 0; from < entries.length; from += this.#blockEvents) {
      const to = from + this.#blockEvents;
      const block = partitionBlock(entries.slice(from, to), parts.slice(from, to), this.#dictionaries.current);
      block.info.parts.forEach((part, index) => {
        for (const entry of block.byPart[index]!) postings.add(entry.did, entry.timeUs, part);
      });
      blocks.push({ ...block, frames: [] });
    }
    return { entries, blocks, added, postings, postingsWritten: 0 };
  }

  /**
   * One step of a seal, each at most a millisecond or two: compress a partition; write up to
   * INDEX_WRITE_CHUNK of the blocks' per-DID postings (in key order, so each chunk is one slice
   * of the B-tree); last, in one transaction, the blocks' frames and directory entries and the
   * tail runs they cover whole. Readers see the blocks only from that last step on: until then
   * their events are read from the tail, and their postings, above every reader's newest block,
   * are never read. A crash in between leaves postings for events still in the tail: sealing
   * them again writes the same postings (a dupsort put of a value the key holds already changes
   * nothing). The collections first numbered for the blocks are stored with the first postings,
   * so the postings' partitions stay theirs after a crash. Returns whether the seal is done.
   */
  #sealStep(seal: SealInProgress): boolean {
    const { blocks, postings } = seal;
    const compressing = blocks.find((block) => block.frames.length < block.byPart.length);
    if (compressing) {
      compressing.frames.push(compressPartition(compressing.byPart[compressing.frames.length]!, this.#dictionaries));
      return false;
    }
    if (seal.postingsWritten < postings.count) {
      const from = seal.postingsWritten;
      const to = Math.min(from + INDEX_WRITE_CHUNK, postings.count);
      this.#root.transactionSync(() => {
        for (const collection of seal.added) this.#partitions.putSync(collection, this.#partOfCollection.get(collection)!);
        postings.forEachInKeyOrder((key, value) => this.#byDid.putSync(key, value), from, to);
      }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
      seal.added = [];
      seal.postingsWritten = to;
      return false;
    }
    const newest = blocks.at(-1)!.end;
    const sealedRuns = this.#tailRunsThrough(newest);
    this.#root.transactionSync(() => {
      for (const { end, info, frames } of blocks) {
        info.parts.forEach((part, index) => this.#blocks.putSync([end, part], frames[index]!));
        this.#directory.putSync(end, info);
        this.#blockSeqs.putSync(info.lastSeq, end);
      }
      for (let i = 0; i < sealedRuns; i++) this.#tailDb.removeSync(this.#tailRuns[i]!);
    }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
    this.#sealing = undefined;
    this.#tail.splice(0, seal.entries.length);
    this.#tailRuns.splice(0, sealedRuns);
    this.#sealedCount += seal.entries.length;
    this.#sealedUpTo = newest;
    return true;
  }

  /** The collections numbered for a block that was not sealed, unless already stored: forget them. */
  #forgetNewPartitions(seal: SealInProgress): void {
    for (const collection of seal.added) this.#partOfCollection.delete(collection);
    this.#collectionOfPart.length -= seal.added.length;
  }

  /** How many of the tail's runs hold no event after `timeUs` (their keys are the first ones). */
  #tailRunsThrough(timeUs: number): number {
    let count = 0;
    while (count < this.#tailRuns.length && this.#tailRuns[count]! <= timeUs) count++;
    return count;
  }

  /** The event's partition; a collection seen for the first time gets the next number (listed in `added`). */
  #partitionOf(entry: Entry, added: string[]): number {
    if (entry.collection === null) return NO_COLLECTION;
    let part = this.#partOfCollection.get(entry.collection);
    if (part === undefined) {
      part = this.#collectionOfPart.length;
      if (part >= SHARED_PARTITION) return SHARED_PARTITION;
      this.#partOfCollection.set(entry.collection, part);
      this.#collectionOfPart.push(entry.collection);
      added.push(entry.collection);
    }
    return part;
  }

  /**
   * Events with time_us > position, oldest first, that pass the filter: at most maxEntries of
   * them, examining about maxScanned at most. Sealed blocks first (by index or by partition,
   * see sealed-reads.ts), then the tail, then the hot log. Synchronous, so it never interleaves
   * with a commit.
   */
  readAfter(position: number, options: ReadOptions): ReadResult {
    const { maxScanned = Infinity, select, reader } = options;
    const collector = collect(options);
    const { visit, taken } = collector;
    // Pins the slabs the sealed events' JSON are views of, until the caller releases the read.
    const lease = this.#blockReader.lease();
    if (!this.hotLog.covers(position)) {
      const tail = this.#tail;
      const tailAfter = function* (after: number) {
        for (let i = firstAfter(tail, after); i < tail.length; i++) yield tail[i]!;
      };
      let read: ReturnType<typeof readStored>;
      try {
        read = readStored(position, this.hotLog.floor, { sealed: this.#sealed, sealedUpTo: this.#sealedUpTo, tailAfter, lost: this.#lost }, select, maxScanned, collector, lease, reader);
      } catch (err) {
        lease.release();
        throw this.#readFailed(err, position);
      }
      position = read.position;
      if (read.full) return this.#leases.track({ entries: taken(), position }, lease);
    }
    if (select && select.dids.size > 0) {
      // Only the DIDs' own entries: every other one fails the filter.
      position = this.hotLog.scanDids(position, select.dids, visit) ?? Math.max(position, this.hotLog.newest);
      return this.#leases.track({ entries: taken(), position }, lease);
    }
    this.hotLog.scan(position, (entry) => {
      position = entry.timeUs;
      return visit(entry);
    });
    return this.#leases.track({ entries: taken(), position }, lease);
  }

  /** Lets the memory a read's entries are views of be reused (see ReadLeases): once nothing holds them any more. */
  release(read: ReadResult): void {
    this.#leases.release(read);
  }

  /** Replay `reader` (ReadOptions.reader) reads no more: the whole blocks merged ahead of it are no longer kept for it. */
  readerDone(reader: number): void {
    this.#blockReader.readerDone(reader);
  }

  /**
   * The oldest stored event's time_us and seq, or undefined when none is stored: from the block
   * directory or the tail, no block read. A directory LMDB cannot read (a page damaged on disk)
   * throws an UnreadableBufferError, its read transaction renewed (#readFailed).
   */
  oldest(): { timeUs: number; seq: number } | undefined {
    try {
      for (const end of this.#directory.getKeys()) {
        // A read-only store keeps the blocks whose entries do not decode (a writable one removes them: #repairDamage).
        if (this.#lost.some(([, lost]) => lost === end)) continue;
        const info = this.#directory.get(end);
        // Nor those whose keys changed (a lookup by it finds nothing, or its events are named lost).
        if (info === undefined || this.inLostEvents(info.first)) continue;
        return { timeUs: info.first, seq: info.firstSeq };
      }
    } catch (err) {
      throw this.#unreadable(err, this.#trimmedUpTo);
    }
    const first = this.#tail[0];
    return first && { timeUs: first.timeUs, seq: first.seq! };
  }

  /**
   * The time_us and seq of the oldest stored event whose seq is at or above `seq` — where an
   * inclusive seq cursor starts (a greater seq: the ones between are not here) — or undefined
   * when no stored event has one yet (the cursor is live). One seek finds the block; at most one
   * block is decompressed.
   */
  atSeq(seq: number): { timeUs: number; seq: number } | undefined {
    let info: BlockInfo | undefined;
    try {
      for (const { value: end } of this.#blockSeqs.getRange({ start: Math.max(seq, 0), limit: 1 })) {
        info = this.#directory.get(end);
        if (!info) break;
        if (seq <= info.firstSeq) return { timeUs: info.first, seq: info.firstSeq };
        const lease = this.#blockReader.lease();
        try {
          const found = this.#blockReader.merged(end, info, info.parts, lease).find((entry) => entry.seq! >= seq);
          return found && { timeUs: found.timeUs, seq: found.seq! };
        } finally {
          lease.release();
        }
      }
    } catch (err) {
      // Where a replay from the block would start: it meets the same damage there, and ends with it.
      throw this.#readFailed(err, info ? info.first - 1 : this.trimmedUpTo);
    }
    const found = this.#tail.find((entry) => entry.seq! >= seq);
    return found && { timeUs: found.timeUs, seq: found.seq! };
  }

  /**
   * A read failed: LMDB marks the read transaction it ran in as failed and refuses every later
   * read in it (MDB_BAD_TXN), so it is renewed here, before any other read — unless LMDB failed
   * nothing (a block whose frame fails zstd's checksum, events lost in a damaged tail run): the
   * renewal is a write, and every replay that reaches such a block would cost one. A damaged block
   * (DamagedBlockError) is said once per block; any other failure becomes an UnreadableBufferError
   * (the read after `position` cannot be made), said once per reason (its numbers aside: ReasonsSaid).
   * Both at error level.
   * Returns the error to throw.
   */
  #readFailed(err: unknown, position: number): DamagedBlockError | UnreadableBufferError {
    if (err instanceof DamagedBlockError) {
      if (!err.transactionSound) this.#renewReadTxn();
      return this.#noticeDamage(err);
    }
    return this.#unreadable(err, position);
  }

  /** A read that LMDB refused, or that broke on what it read (not a damaged block): see #readFailed. */
  #unreadable(err: unknown, position: number): UnreadableBufferError {
    this.#renewReadTxn();
    this.#unreadableReads++;
    const unreadable = err instanceof UnreadableBufferError ? err : new UnreadableBufferError(position, err);
    const reason = err instanceof Error ? err.message : String(err);
    if (this.#readFailures.first(reason)) {
      this.#logger?.error(
        { position, err: reason, ...(err instanceof Error && (err as { code?: unknown }).code === undefined ? { stack: err.stack } : {}) },
        'the buffer could not be read (its file may be damaged on disk: check the disk): replays whose reads fail so end with BufferUnreadable',
      );
    }
    return unreadable;
  }

  /**
   * Renews the read transaction after a failed read. Resetting it is not enough: lmdb-js begins
   * the next one by reusing the last while a cursor still holds it and no commit came since, and
   * a range whose LMDB call failed leaves its cursor open. A write (the format number, as it is)
   * commits a new transaction, which the next read cannot take for the failed one. A read-only
   * store (contrail inspect) cannot write: its reads fail so until the next commit.
   */
  #renewReadTxn(): void {
    this.#root.resetReadTxn();
    if (!this.#writable || this.#closed) return;
    try {
      this.#meta.putSync(META.format, FORMAT);
    } catch (err) {
      this.#logger?.error({ err: (err as Error).message }, 'could not renew the read transaction after a failed read');
    }
  }

  /**
   * The start found events it cannot read (`lost`: a tail run that failed its check, or a block
   * whose directory entry does not decode): they are named lost to readers (tail-runs.ts), said
   * once at error level, `what` first.
   */
  #eventsLost(lost: LostEvents, reason: string, what: string): void {
    const [first, end] = lost;
    if (!this.#lost.some(([, known]) => known === end)) this.#lost.push(lost);
    this.#damagedBlocks.add(end);
    this.#logger?.error({ first, end, err: reason }, `${what}: its events are lost, and replays that reach them end with BufferDamaged, naming them`);
  }

  /**
   * A writable start found events it cannot read: names them lost in `meta` (#lost) and, in the
   * same transaction, takes what holds them out of the way. Blocks whose directory entries do not
   * decode, or whose keys are not their frames' end (`lostBlocks`, by that end), are removed, their
   * frames and seq entry with the entry, so that retention, seq lookups and index rebuilds never
   * meet them; their per-DID postings stay, never read (every read stops before lost events), as a
   * damaged partition's do when retention removes its block. With `soundBlocks` (a key changed:
   * out of order in its LMDB page, where no lookup by key finds it reliably) the directory is
   * cleared whole and written again with those alone. With `soundRuns` (some tail run was damaged) the tail table is written again with
   * those alone: a run whose key changed in place to above the next run's sits out of order in its
   * LMDB page, where a replay worker's seek for the runs after it found it first and stopped there,
   * past its read's end; no seek by key finds such a run reliably, so the table is cleared whole.
   */
  #repairDamage(
    lostBlocks: readonly number[],
    soundBlocks: ReadonlyArray<[end: number, info: BlockInfo]> | undefined,
    soundRuns: ReadonlyArray<[key: number, value: Buffer]> | undefined,
  ): void {
    const forgotten = new Set(lostBlocks);
    this.#root.transactionSync(() => {
      if (soundBlocks) {
        this.#directory.clearSync();
        for (const [end, info] of soundBlocks) this.#directory.putSync(end, info);
      }
      for (const end of lostBlocks) {
        if (!soundBlocks) this.#directory.removeSync(end);
        for (const key of this.#blocks.getKeys({ start: [end, 0], end: [end, SHARED_PARTITION + 1] })) this.#blocks.removeSync(key);
      }
      if (forgotten.size > 0) for (const { key, value } of this.#blockSeqs.getRange()) if (forgotten.has(value)) this.#blockSeqs.removeSync(key);
      if (soundRuns) {
        this.#tailDb.clearSync();
        for (const [key, value] of soundRuns) this.#tailDb.putSync(key, value);
      }
      this.#meta.putSync(META.tailDamage, this.#lost);
    }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
  }

  /**
   * The block directory's entries in the order LMDB keeps them, read in one walk, which looks no
   * key up: in a page where a key changed out of order, a lookup by a key may find nothing, the
   * sound ones' included. An entry that does not decode ends the walk: then each is read by its
   * key, its `error` kept (and `info` is undefined where the lookup finds nothing).
   */
  #directoryEntries(): Array<{ end: number; info?: BlockInfo; error?: unknown }> {
    try {
      return [...this.#directory.getRange()].map(({ key, value }) => ({ end: key, info: value }));
    } catch {
      return [...this.#directory.getKeys()].map((end) => {
        try {
          return { end, info: this.#directory.get(end) };
        } catch (error) {
          return { end, error };
        }
      });
    }
  }

  /**
   * The end of the first block whose frames come after `timeUs` (the blocks table is keyed by
   * [end, partition]); undefined if none does, or the blocks table cannot be read there.
   */
  #firstBlockEndAfter(timeUs: number): number | undefined {
    try {
      for (const [end] of this.#blocks.getKeys({ start: [timeUs + 1, 0], limit: 1 })) return end;
    } catch {
      // Damaged too: the events of the block whose key changed cannot be bounded, nor read.
    }
    return undefined;
  }

  /** A read met a damaged block: said once per block, at error level. Returns `err`. */
  #noticeDamage(err: DamagedBlockError): DamagedBlockError {
    if (!this.#damagedBlocks.has(err.end)) {
      this.#damagedBlocks.add(err.end);
      this.#logger?.error(
        { first: err.first, end: err.end, err: err.message },
        'a damaged block of the buffer cannot be read (its bytes on disk changed: check the disk): replays that reach it end with BufferDamaged, naming its events',
      );
    }
    return err;
  }

  /** The buffer's oldest and newest event, and its size (size()); the oldest is read from the directory (oldest()). */
  span(): StoreSpan {
    return { oldestTimeUs: this.oldest()?.timeUs, newestTimeUs: this.newestTimeUs, ...this.size() };
  }

  /** The newest stored event's time_us, or undefined when none is stored: known without a read. */
  get newestTimeUs(): number | undefined {
    return this.#tail.at(-1)?.timeUs ?? (this.#sealedCount > 0 ? this.#sealedUpTo : undefined);
  }

  /** How many events the buffer holds, and the bytes of LMDB pages they occupy: from LMDB's table stats, no table read. */
  size(): Pick<StoreSpan, 'eventCount' | 'bytes'> {
    const tables = this.bytesByTable();
    return { eventCount: this.#sealedCount + this.#tail.length, bytes: tables.blocks + tables.directory + tables.tail + tables.didIndex };
  }

  /** Bytes of LMDB pages each part of the buffer occupies (what the indexes cost, for sizing). */
  bytesByTable(): { blocks: number; directory: number; tail: number; didIndex: number } {
    const pages = (db: { getStats(): object }) => {
      const stats = db.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
      return (stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages) * stats.pageSize;
    };
    // LMDB's table stats leave out a dupsort table's sub-databases (a busy DID's postings), so
    // the index counts its tree and every posting: an upper bound (small DIDs' postings are both).
    const index = this.#byDid.getStats() as { entryCount: number; pageSize: number };
    const postings = Math.ceil((index.entryCount * POSTING_BYTES) / index.pageSize) * index.pageSize;
    return {
      blocks: pages(this.#blocks),
      directory: pages(this.#directory) + pages(this.#blockSeqs),
      tail: pages(this.#tailDb),
      didIndex: pages(this.#byDid) + postings,
    };
  }

  /**
   * Removes the oldest events with time_us < before — whole blocks whose every event is older,
   * then, once no block is left, tail events — about maxEvents at most (at least a block);
   * returns how many. May empty the buffer: every event is older than the bound.
   */
  async trimBefore(before: number, maxEvents: number): Promise<number> {
    let removed = 0;
    while (removed < maxEvents) {
      const oldest = this.#oldestBlock();
      if (oldest) {
        if (oldest.end >= before) break;
        removed += await this.#removeBlock(oldest.end, oldest.info);
        continue;
      }
      if (this.#tail.length >= this.#blockEvents && !this.#sealFailing) {
        // Full blocks' worth of events wait in the tail (or are being sealed): seal them, then remove blocks instead.
        this.#finishSeals();
        continue;
      }
      const count = Math.min(maxEvents - removed, firstAfter(this.#tail, before - 1));
      if (count === 0) break;
      removed += this.#removeTail(count);
    }
    return removed;
  }

  /**
   * Removes the oldest events for the size bound — the oldest block, or (with no block left)
   * up to maxEvents of the tail's oldest — but never the newest event; returns how many.
   */
  async trimOldest(maxEvents: number): Promise<number> {
    // Full blocks' worth of events wait in the tail (or are being sealed): seal them first, so only
    // blocks hold them; a failing seal is retried after the next commit, as in trimBefore.
    if (this.#tail.length >= this.#blockEvents && !this.#oldestBlock() && !this.#sealFailing) this.#finishSeals();
    const oldest = this.#oldestBlock();
    if (oldest && (this.#tail.length > 0 || this.#sealedCount > sumOf(oldest.info.counts))) return this.#removeBlock(oldest.end, oldest.info);
    const count = Math.min(maxEvents, this.#tail.length - 1);
    return count > 0 ? this.#removeTail(count) : 0;
  }

  /** The oldest block; a directory LMDB cannot read throws an UnreadableBufferError (see #readFailed), and retention's pass fails with it. */
  #oldestBlock(): { end: number; info: BlockInfo } | undefined {
    try {
      for (const { key, value } of this.#directory.getRange({ limit: 1 })) return { end: key, info: value };
    } catch (err) {
      throw this.#unreadable(err, this.#trimmedUpTo);
    }
    return undefined;
  }

  /**
   * Removes a block: first, in one transaction, its frames, its directory entry and the new
   * trimmedUpTo (from then on no reader can reach it), then its per-DID index postings, a few
   * hundred per transaction with a turn of the event loop between them, so removing a block's
   * postings (~20 ms of B-tree deletes) never holds ingest and live sends for longer than one
   * chunk. Readers never read postings at or below trimmedUpTo (sealed-reads.ts), so the ones
   * still waiting are never seen; a crash in between leaves at most one block's (~10 KB) behind.
   * For the same reason a damaged partition (DamagedBlockError), whose postings cannot be named,
   * leaves them behind without making the index wrong: the next rebuild, if any, clears them.
   */
  async #removeBlock(end: number, info: BlockInfo): Promise<number> {
    const byPart: Array<readonly [number, Entry[]]> = [];
    let damage: Error | undefined;
    for (const part of info.parts) {
      try {
        byPart.push([part, this.#blockReader.partOnce(end, info, part)]);
      } catch (err) {
        damage ??= err as Error;
      }
    }
    if (damage) {
      this.#logger?.error(
        { first: info.first, end, err: damage.message },
        'retention removed a damaged block of the buffer (its bytes on disk changed: check the disk); the per-DID index entries it could not read stay, never read',
      );
    }
    const trimmedUpTo = Math.max(this.#trimmedUpTo, end);
    this.#root.transactionSync(() => {
      for (const part of info.parts) this.#blocks.removeSync([end, part]);
      this.#directory.removeSync(end);
      this.#blockSeqs.removeSync(info.lastSeq);
      this.#meta.putSync(META.trimmedUpTo, trimmedUpTo);
    }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
    this.#blockReader.forget(end, info);
    const count = sumOf(info.counts);
    this.#sealedCount -= count;
    this.#trimmed(trimmedUpTo);
    const postings = this.#postingsOf(byPart);
    for (let from = 0; from < postings.count; from += INDEX_TRIM_CHUNK) {
      if (from > 0) await new Promise((resolve) => setImmediate(resolve));
      if (this.#closed) break;
      this.#root.transactionSync(() => {
        postings.forEachInKeyOrder((key, value) => this.#byDid.removeSync(key, value), from, Math.min(from + INDEX_TRIM_CHUNK, postings.count));
      }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
    }
    return count;
  }

  /** The per-DID index postings of a block's partitions' events. */
  #postingsOf(byPart: ReadonlyArray<readonly [number, readonly Entry[]]>): Postings {
    let count = 0;
    for (const [, events] of byPart) count += events.length;
    const postings = new Postings(count);
    for (const [part, events] of byPart) for (const entry of events) postings.add(entry.did, entry.timeUs, part);
    return postings;
  }

  /** Removes the tail's oldest `count` events (when no block is left). */
  #removeTail(count: number): number {
    // A seal in progress holds the tail's oldest events: give it up (as a failed one is), else its
    // last step would remove events this removal has already taken. Its postings written so far
    // are at or below the new trimmedUpTo, or are written again by the next seal of their events.
    if (this.#sealing) {
      this.#forgetNewPartitions(this.#sealing);
      this.#sealing = undefined;
    }
    const removed = this.#tail.slice(0, count);
    const newest = removed.at(-1);
    if (newest === undefined) return 0;
    const trimmedUpTo = Math.max(this.#trimmedUpTo, newest.timeUs);
    const removedRuns = this.#tailRunsThrough(newest.timeUs);
    // A run that keeps some of its events is written again with only those (the size bound counts its bytes).
    const partial = newest.timeUs === this.#tailRuns[removedRuns - 1] ? undefined : this.#tailRuns[removedRuns];
    this.#root.transactionSync(() => {
      for (let i = 0; i < removedRuns; i++) this.#tailDb.removeSync(this.#tailRuns[i]!);
      if (partial !== undefined) this.#tailDb.putSync(partial, storedRun(encodeRecords(this.#tail.slice(count, firstAfter(this.#tail, partial)))));
      this.#meta.putSync(META.trimmedUpTo, trimmedUpTo);
    }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
    this.#tail.splice(0, count);
    this.#tailRuns.splice(0, removedRuns);
    this.#trimmed(trimmedUpTo);
    return count;
  }

  #trimmed(upTo: number): void {
    this.#trimmedUpTo = upTo;
    // Readers served from memory must not see what readers served from disk no longer can.
    this.hotLog.dropThrough(upTo);
  }

  /**
   * The per-DID index contradicts a block: DID-filtered reads scan from now on; a writable store
   * records it (so that a start before the rebuild is done begins it again) and rebuilds the index
   * in the background, unless it has rebuilt it DID_INDEX_MAX_REBUILDS times within the window:
   * then it abandons the index until the next start, saying so once. A mark LMDB refuses to write
   * (a meta page damaged on disk) leaves the index bypassed, not rebuilt, and is counted and logged.
   */
  #didIndexInconsistent(detail: string): void {
    if (this.#didIndex !== 'ok' || this.#closed) return;
    this.#didIndex = 'bypassed';
    this.#didIndexInconsistencies++;
    if (!this.#writable) {
      this.#logger?.error({ detail }, 'the per-DID index is inconsistent: DID-filtered reads scan the blocks instead');
      return;
    }
    try {
      this.#meta.putSync(META.didIndexBroken, true);
    } catch (err) {
      // A meta page LMDB refuses (damaged on disk): a rebuild could not record its end either. A
      // failed write leaves the read transaction sound: nothing to renew (a renewal writes meta).
      this.#didIndexMarkWriteFailures++;
      this.#logger?.error(
        { detail, err: (err as Error).message },
        'the per-DID index is inconsistent, and the mark saying so cannot be written (a page of the buffer may be damaged on disk: check the disk): DID-filtered replays scan the blocks, and the index is not rebuilt',
      );
      return;
    }
    const now = this.#nowMs();
    this.#rebuildStarts = this.#rebuildStarts.filter((at) => now - at < DID_INDEX_REBUILD_WINDOW_MS);
    if (this.#rebuildStarts.length >= DID_INDEX_MAX_REBUILDS) {
      this.#didIndex = 'abandoned';
      this.#logger?.error(
        { detail, rebuilds: this.#rebuildStarts.length, windowHours: DID_INDEX_REBUILD_WINDOW_MS / 3_600_000 },
        'the per-DID index is inconsistent again after its last rebuilds (a bug, or a failing disk?): it is abandoned, DID-filtered replays scan the blocks until the next start rebuilds it',
      );
      return;
    }
    this.#logger?.error({ detail }, 'the per-DID index is inconsistent: DID-filtered replays scan the blocks instead while it is rebuilt in the background');
    this.#startRebuild();
  }

  #startRebuild(): void {
    this.#didIndex = 'rebuilding';
    this.#rebuildStarts.push(this.#nowMs());
    this.#rebuild = { clearFrom: Buffer.alloc(0), through: 0, done: 0, group: [], read: 0, postings: undefined, written: 0, gaps: [], started: performance.now() };
    this.#logger?.warn({ events: this.#sealedCount }, 'rebuilding the per-DID index from the blocks, in the background: DID-filtered replays scan until it is done');
    this.#queueSteps();
  }

  /** Runs the rebuild's steps for about SEAL_TURN_MS; a failed step (a read LMDB refused: #rebuildRead) leaves the index bypassed until the next start. */
  #continueRebuild(started: number): void {
    const rebuild = this.#rebuild!;
    try {
      while (!this.#rebuildStep(rebuild, started)) {
        if (performance.now() - started >= SEAL_TURN_MS) return this.#queueSteps();
      }
    } catch (err) {
      this.#rebuild = undefined;
      this.#didIndex = 'bypassed';
      this.#logger?.error({ err: (err as Error).message }, 'rebuilding the per-DID index failed: DID-filtered replays scan the blocks until the next start rebuilds it');
      return;
    }
    this.#rebuild = undefined;
    this.#indexGaps = rebuild.gaps;
    this.#didIndex = 'ok';
    this.#logger?.warn({ events: this.#sealedCount, seconds: Math.round(performance.now() - rebuild.started) / 1000 }, 'rebuilt the per-DID index');
  }

  /**
   * One step of rebuilding the per-DID index from the blocks, each about a millisecond: first the
   * index is cleared, REBUILD_CLEAR_CHUNK DIDs a step, and the blocks there are then are the
   * rebuild's; blocks sealed later write their own, as ever (a seal's postings are all written
   * after the clear: no seal is in progress in a turn of rebuild steps, see #continueSteps). Then, a
   * group of REBUILD_GROUP_BLOCKS blocks at a time, oldest first: a block's partitions read per
   * step, then the group's postings in key order, in one transaction per step until SEAL_TURN_MS
   * is spent. Retention may remove blocks meanwhile: one removed before its turn is skipped, and
   * no posting at or below trimmedUpTo is written (retention removes a block's postings after it
   * moves trimmedUpTo past it, so one written before is removed with them). Last, the mark that
   * the index is inconsistent is removed: a crash before leaves it, and the next start begins
   * again. A block damaged on disk (DamagedBlockError) gets the postings of the partitions that
   * can be read, and is kept with the mark's removal as a gap in the index (IndexGap), said once:
   * DID-filtered reads read that block itself, and end at its damage as other reads do. Returns
   * whether the rebuild is done.
   */
  #rebuildStep(rebuild: IndexRebuild, started: number): boolean {
    if (rebuild.clearFrom) {
      const keys: Buffer[] = [];
      const from = rebuild.clearFrom.length > 0 ? { start: rebuild.clearFrom } : {};
      this.#rebuildRead(rebuild, () => {
        for (const key of this.#byDid.getKeys({ ...from, limit: REBUILD_CLEAR_CHUNK })) keys.push(Buffer.from(key));
      });
      if (keys.length > 0) {
        this.#root.transactionSync(() => {
          for (const key of keys) this.#byDid.removeSync(key);
        }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
        rebuild.clearFrom = keys.at(-1);
        return false;
      }
      // Blocks sealed while it was cleared are the rebuild's too: their postings may have been
      // cleared. No seal is in progress (rebuild steps run in turns without one), so none has
      // postings written that the clear took and that it would not write again.
      rebuild.clearFrom = undefined;
      rebuild.through = this.#sealedUpTo;
      rebuild.done = this.#trimmedUpTo;
      return false;
    }
    const { postings } = rebuild;
    if (postings && rebuild.read === rebuild.group.length) {
      if (rebuild.written < postings.count) {
        const trimmedUpTo = this.#trimmedUpTo;
        this.#root.transactionSync(() => {
          do {
            const to = Math.min(rebuild.written + REBUILD_WRITE_CHUNK, postings.count);
            postings.forEachInKeyOrder((key, value) => {
              if (timeOfPosting(value) > trimmedUpTo) this.#byDid.putSync(key, value);
            }, rebuild.written, to);
            rebuild.written = to;
          } while (rebuild.written < postings.count && performance.now() - started < SEAL_TURN_MS);
        }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
        return false;
      }
      rebuild.done = rebuild.group.at(-1)!.end;
      rebuild.group = [];
      rebuild.postings = undefined;
    }
    if (!rebuild.postings) {
      this.#rebuildRead(rebuild, () => {
        for (const { key: end, value: info } of this.#directory.getRange({ start: rebuild.done + 1, limit: REBUILD_GROUP_BLOCKS })) {
          if (end > rebuild.through) break;
          rebuild.group.push({ end, info });
        }
      });
      if (rebuild.group.length === 0) {
        // Together: a replay worker that found the index inconsistent reads through it again once its snapshot counts this rebuild (snapshot-reader.ts).
        this.#root.transactionSync(() => {
          this.#meta.removeSync(META.didIndexBroken);
          this.#meta.putSync(META.didIndexGaps, rebuild.gaps);
          this.#meta.putSync(META.didIndexRebuilds, this.#didIndexRebuilds + 1);
        });
        this.#didIndexRebuilds++;
        return true;
      }
      let count = 0;
      for (const { info } of rebuild.group) count += sumOf(info.counts);
      rebuild.postings = new Postings(count);
      rebuild.read = 0;
      rebuild.written = 0;
      return false;
    }
    const { end, info } = rebuild.group[rebuild.read++]!;
    // Removed by retention since the group was listed: its postings must not come back.
    if (end <= this.#trimmedUpTo) return false;
    for (const part of info.parts) {
      let events: Entry[];
      try {
        events = this.#blockReader.partOnce(end, info, part);
      } catch (err) {
        if (!(err instanceof DamagedBlockError)) throw this.#unreadable(err, rebuild.done);
        // LMDB failed the read transaction (MDB_PAGE_NOTFOUND): read in it, the next blocks would fail too (MDB_BAD_TXN) and be taken for damaged.
        if (!err.transactionSound) this.#renewReadTxn();
        if (rebuild.gaps.at(-1)?.[1] !== end) this.#indexGapFound(rebuild, [info.first, end], err);
        continue;
      }
      for (const entry of events) rebuild.postings.add(entry.did, entry.timeUs, part);
    }
    return false;
  }

  /**
   * A read of the rebuild's that LMDB refuses (a page damaged on disk) fails the rebuild as an
   * UnreadableBufferError: counted, said once, and the read transaction LMDB failed renewed, so
   * the reads after it (replays that never touch the index) are served.
   */
  #rebuildRead(rebuild: IndexRebuild, read: () => void): void {
    try {
      read();
    } catch (err) {
      throw this.#unreadable(err, rebuild.done);
    }
  }

  /** A rebuild cannot read part of a block (damaged): its events get no postings, said once. */
  #indexGapFound(rebuild: IndexRebuild, gap: IndexGap, err: DamagedBlockError): void {
    rebuild.gaps.push(gap);
    this.#damagedBlocks.add(gap[1]);
    this.#logger?.error(
      { first: gap[0], end: gap[1], err: err.message },
      'the per-DID index is rebuilt without entries for the events of a damaged block (its bytes on disk changed: check the disk): DID-filtered replays read the block itself, and end at it with BufferDamaged as other replays do',
    );
  }

  /** Size of the LMDB data file on disk (it does not shrink when events are trimmed; pages are reused). */
  fileBytes(): number {
    const stats = this.#root.getStats() as { lastPageNumber: number; pageSize: number };
    return (stats.lastPageNumber + 1) * stats.pageSize;
  }

  /**
   * Closes the buffer; a writable one seals the block in progress (so a clean stop leaves no
   * more than a block's events in the tail), is synced to disk and marked as stopped cleanly.
   */
  async close(): Promise<void> {
    if (this.#writable && !this.#closed) this.#finishSeals();
    this.#closed = true;
    if (this.#run) await this.#run.end(() => this.#root.close());
    else await this.#root.close();
    this.#lock?.release();
  }

  #releasingLockOnError<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      this.#lock?.release();
      throw err;
    }
  }

  /**
   * Refuses a buffer in another layout (never misreads it): a buffer with events but no format
   * was written by contrail before version 2. An empty one is stamped with the current format.
   */
  #checkFormat(dataDir: string): void {
    const format = readMeta(this.#meta, META.format);
    if (format === FORMAT) return;
    if (format === undefined && readMeta(this.#meta, META.cursor) === undefined && readMeta(this.#meta, META.lastTimeUs) === undefined) {
      if (this.#writable) this.#meta.putSync(META.format, FORMAT);
      return;
    }
    const writer = format === undefined ? 'an older contrail (store format 1, events without seq)' : `a contrail with store format ${format}`;
    throw new Error(
      `the event buffer in ${dataDir} was written by ${writer}; this contrail reads format ${FORMAT} and will not misread it. ` +
        'Move that folder aside (or pass another --data-dir) to start a new buffer; the old one stays readable by the contrail that wrote it',
    );
  }
}

/** The refusal of a buffer whose state (stored-state.ts) was damaged on disk: what, where, and what the operator can do. */
function damagedBuffer(dataDir: string, err: DamagedStateError): Error {
  return new Error(
    `the event buffer in ${dataDir} is damaged: ${err.message}. It holds what the events cannot give back (the seqs and time_us given out, ` +
      "the upstream cursor, each collection's partition, the dictionaries blocks were compressed with), so contrail will not guess it. " +
      `Move ${dataDir} aside (or pass another --data-dir) to start a new buffer, and check the disk`,
  );
}

/** Creates the data dir (and its parents); a file in its place, or in a parent's, is named rather than left to mkdir's EEXIST. */
function makeDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
    const file = firstFileOnPath(dataDir);
    if (file === undefined) throw err;
    throw new Error(`data dir ${dataDir} is not a directory (${file} is a file): give --data-dir a folder`);
  }
}

/** The first path on the way to `path` (itself included) that exists and is not a directory. */
function firstFileOnPath(path: string): string | undefined {
  const parts = resolve(path).split(sep);
  for (let end = 2; end <= parts.length; end++) {
    const prefix = parts.slice(0, end).join(sep);
    const stat = statSync(prefix, { throwIfNoEntry: false });
    if (stat === undefined) return undefined;
    if (!stat.isDirectory()) return prefix;
  }
  return undefined;
}
