import type { Database, RootDatabase } from 'lmdb';
import type { Entry } from '../events/index.ts';
import { BlockReader, DamagedBlockError } from './blocks.ts';
import { Dictionaries } from './dictionaries.ts';
import { collect, ReadLeases, readStored, type ReadOptions, type ReadResult } from './disk-reads.ts';
import { openEnvironment, openMeta, openTables, type BufferLocation } from './environment.ts';
import { closingRanges, UnreadableBufferError } from './read-errors.ts';
import { META, readDidIndexMeta } from './stored-state.ts';
import { SealedReader, type IndexGap } from './sealed-reads.ts';
import { readRun, type LostEvents } from './tail-runs.ts';

/** What the EventStore knows that a snapshot's reader needs (sent with each read). */
export interface SnapshotReadOptions extends ReadOptions {
  /** Events in sealed blocks (for the DID index's selectivity estimate). */
  sealedEvents: number;
  /** False once the per-DID index was found inconsistent, until it is rebuilt. */
  didIndexUsable: boolean;
  /**
   * The reader asked for whatever is oldest: a position retention has passed starts at the oldest
   * event this snapshot holds, instead of the read answering `trimmed`.
   */
  fromOldest?: boolean;
}

/** A read's snapshot ends before the events the request asked up to (a race with a commit, or a fault): nothing is damaged. */
export class SnapshotBehindError extends Error {
  override name = 'SnapshotBehindError';
}

/** What a fromOldest read started at: the oldest event its snapshot held (none: the buffer was empty). */
export interface OldestHeld {
  oldest?: { timeUs: number; seq: number };
}

export type SnapshotRead =
  | (ReadResult & {
      trimmed?: undefined;
      /** Why the per-DID index was bypassed (the EventStore records it). */
      inconsistency?: string;
      /** With an inconsistency: the index rebuilds its snapshot counted (one rebuilt since makes the report old news). */
      indexRebuilds?: number;
      /** A fromOldest read's start. */
      fromOldest?: OldestHeld;
      /** LMDB's reason for a page the read found its way around (the block directory's last: see #sealedUpTo). */
      refused?: string;
    })
  | {
      trimmed: true;
      /** As above: the page read around on the way to finding the events gone. */
      refused?: string;
    };

/**
 * Reads the stored events (sealed blocks and the tail) in another thread than the EventStore's:
 * a replay worker thread opens the same LMDB environment (lmdb-js shares it within the process)
 * and reads it without writing. Each read starts a fresh read transaction, so its snapshot holds
 * every event committed before the read was asked for, and is consistent: a block being sealed
 * is either still in the tail or already in its block; a block being removed by retention is
 * either there or trimmedUpTo says it is gone — then the read answers `trimmed` rather than
 * skip events silently, as the main thread's check of trimmedUpTo would.
 */
export class SnapshotReader {
  readonly #root: RootDatabase;
  readonly #meta: Database<unknown, string>;
  /** The tables read by range, each range closed on error (closingRanges); the blocks' are read by key alone (BlockReader). */
  readonly #tables: ReturnType<typeof rangesOf>;
  readonly #sealed: SealedReader;
  readonly #blocks: BlockReader;
  readonly #leases = new ReadLeases();
  readonly #collectionOfPart: Array<string | null> = [];
  /** The read in progress: what the SealedReader's callbacks answer from. */
  #current = { sealedEvents: 0, trimmedUpTo: 0, indexRebuilds: 0, indexGaps: [] as readonly IndexGap[], partitionsReloaded: false };
  /**
   * Set when an index entry contradicted its block, with the index rebuilds its snapshot counted:
   * this thread reads by scans until a snapshot counts a later rebuild (see read()).
   */
  #inconsistency: string | undefined;
  #inconsistentAtRebuilds = 0;
  #didIndexUsable = true;
  #refusedByLastRead: string | undefined;

  constructor(location: BufferLocation, blockCacheBytes: number) {
    this.#root = openEnvironment(location);
    this.#meta = openMeta(this.#root);
    const tables = openTables(this.#root);
    this.#tables = rangesOf(tables);
    this.#blocks = new BlockReader(tables.blocks, new Dictionaries(this.#root, undefined, false), blockCacheBytes);
    this.#loadPartitions();
    this.#sealed = new SealedReader(
      this.#tables.directory,
      this.#tables.byDid,
      this.#blocks,
      (part) => this.#collectionOf(part),
      () => this.#current.sealedEvents,
      () => this.#inconsistency === undefined && this.#didIndexUsable,
      () => this.#current.trimmedUpTo,
      () => this.#current.indexGaps,
      (detail) => this.#foundInconsistent(detail),
    );
  }

  /**
   * The events with position < time_us ≤ end that pass the filter, within the read's bounds. A
   * read that fails throws a DamagedBlockError (a block's frame), an UnreadableBufferError (LMDB
   * refused it, or it broke on what it read: the buffer's damage, as the EventStore's reads say
   * it), or a SnapshotBehindError (this snapshot is older than the request: no damage).
   */
  read(position: number, end: number, options: SnapshotReadOptions): SnapshotRead {
    this.#refusedByLastRead = undefined;
    try {
      return this.#read(position, end, options);
    } catch (err) {
      if (err instanceof DamagedBlockError || err instanceof SnapshotBehindError) throw err;
      throw new UnreadableBufferError(position, err);
    }
  }

  #read(position: number, end: number, options: SnapshotReadOptions): SnapshotRead {
    // lmdb-js renews its shared read transaction only on a later event-loop turn: reset it, so
    // this read sees every commit made before the request was sent.
    this.#root.resetReadTxn();
    const { sealedUpTo, refused } = this.#sealedUpTo();
    this.#refusedByLastRead = refused;
    const trimmedUpTo = (this.#meta.get(META.trimmedUpTo) as number | undefined) ?? 0;
    if (position < trimmedUpTo) {
      if (!options.fromOldest) return { trimmed: true, ...(refused ? { refused } : {}) };
      // Asked for whatever is oldest: this snapshot's oldest is, though the main thread may have
      // trimmed again since it asked (reading from there again would meet the next trim).
      position = trimmedUpTo;
    }
    const lastTimeUs = (this.#meta.get(META.lastTimeUs) as number | undefined) ?? 0;
    if (lastTimeUs < end) throw new SnapshotBehindError(`the read snapshot ends at time_us ${lastTimeUs}, before ${end}: it is older than the request`);
    // Read as the EventStore reads them: a damaged one bypasses the index (the store rebuilds it), never fails the read.
    const { bypassed, rebuilds: indexRebuilds, gaps: indexGaps } = readDidIndexMeta(this.#meta);
    this.#current = { sealedEvents: options.sealedEvents, trimmedUpTo, indexRebuilds, indexGaps, partitionsReloaded: false };
    // A rebuild finished after the snapshot this thread found the index inconsistent in: whether
    // or not a read of its own fell inside the rebuild. Not sooner: its report may not have
    // reached the EventStore yet, or met an index rebuilt since the read was asked for.
    if (indexRebuilds > this.#inconsistentAtRebuilds) this.#inconsistency = undefined;
    // The mark the EventStore sets when the index is found inconsistent and removes once it is
    // rebuilt: a read asked for before the index was found out, read during the rebuild, would
    // otherwise take a half-built index for a whole one.
    this.#didIndexUsable = options.didIndexUsable && !bypassed;
    const inconsistentBefore = this.#inconsistency;
    const collector = collect(options);
    const tailAfter = (after: number, end: number) => this.#tailAfter(after, end);
    const lease = this.#blocks.lease();
    const lost = (this.#meta.get(META.tailDamage) as LostEvents[] | undefined) ?? [];
    const read = readStored(position, end, { sealed: this.#sealed, sealedUpTo, tailAfter, lost }, options.select, options.maxScanned ?? Infinity, collector, lease, options.reader);
    const inconsistency = this.#inconsistency !== inconsistentBefore ? this.#inconsistency : undefined;
    return this.#leases.track(
      {
        entries: collector.taken(),
        position: read.position,
        ...(inconsistency ? { inconsistency, indexRebuilds } : {}),
        ...(options.fromOldest ? { fromOldest: this.#oldestHeld(trimmedUpTo) } : {}),
        ...(refused ? { refused } : {}),
      },
      lease,
    );
  }

  /**
   * Where the snapshot's sealed blocks end: the block directory's newest key (the EventStore keeps
   * it in memory). Where LMDB refuses the directory's last page (damaged on disk), every read would
   * fail here, its blocks on sound pages too, and the main thread read every batch itself: the
   * newest block's end is read instead from `blockSeqs`, which each seal and removal writes in the
   * same transaction as the directory, in a snapshot renewed first (LMDB failed this one), and the
   * refusal is said with the read. Called first, so that everything the read sees is of that snapshot.
   */
  #sealedUpTo(): { sealedUpTo: number; refused?: string } {
    try {
      for (const key of this.#tables.directory.getKeys({ reverse: true, limit: 1 })) return { sealedUpTo: key };
      return { sealedUpTo: 0 };
    } catch (err) {
      this.#root.resetReadTxn();
      for (const { value } of this.#tables.blockSeqs.getRange({ reverse: true, limit: 1 })) return { sealedUpTo: value, refused: (err as Error).message };
      return { sealedUpTo: 0, refused: (err as Error).message };
    }
  }

  /** The snapshot's oldest event, as EventStore.oldest finds it: the first block's first, or the tail's first. */
  #oldestHeld(trimmedUpTo: number): OldestHeld {
    for (const { value } of this.#tables.directory.getRange({ limit: 1 })) return { oldest: { timeUs: value.first, seq: value.firstSeq } };
    for (const entry of this.#tailAfter(trimmedUpTo, Infinity)) return { oldest: { timeUs: entry.timeUs, seq: entry.seq! } };
    return {};
  }

  #foundInconsistent(detail: string): void {
    if (this.#inconsistency !== undefined) return;
    this.#inconsistency = detail;
    this.#inconsistentAtRebuilds = this.#current.indexRebuilds;
  }

  /**
   * What the latest read found its way around (SnapshotRead.refused), whether it then answered or
   * threw: damage to say even when the read failed for another reason (its snapshot behind the request).
   */
  get refusedByLastRead(): string | undefined {
    return this.#refusedByLastRead;
  }

  /** Lets the memory a read's entries are views of be reused (see ReadLeases): once nothing holds them any more. */
  release(read: SnapshotRead): void {
    if (!read.trimmed) this.#leases.release(read);
  }

  /** Replay `reader` (SnapshotReadOptions.reader) reads no more: the whole blocks merged ahead of it are no longer kept for it. */
  readerDone(reader: number): void {
    this.#blocks.readerDone(reader);
  }

  /** Block partitions read and decompressed so far (see BlockReader.partitionsRead). */
  get partitionsRead(): number {
    return this.#blocks.partitionsRead;
  }

  close(): Promise<void> {
    return this.#root.close();
  }

  /**
   * The tail's events after `after`, up to the run holding `end`: a run is keyed by its newest
   * event, and may hold older ones. A run that fails its check (damaged since the EventStore read
   * it at its start) fails the read: the main thread reads it again from the events it holds.
   */
  *#tailAfter(after: number, end: number): Iterable<Entry> {
    for (const { key, value } of this.#tables.tail.getRange({ start: after + 1 })) {
      for (const entry of readRun(value)) if (entry.timeUs > after) yield entry;
      if (key >= end) return;
    }
  }

  /** A partition's collection; a partition numbered after this thread last looked is read from the snapshot. */
  #collectionOf(part: number): string | null | undefined {
    if (part >= this.#collectionOfPart.length && !this.#current.partitionsReloaded) {
      this.#current.partitionsReloaded = true;
      this.#loadPartitions();
    }
    return this.#collectionOfPart[part];
  }

  #loadPartitions(): void {
    this.#collectionOfPart.length = 0;
    this.#collectionOfPart.push(null);
    for (const { key, value } of this.#tables.partitions.getRange()) this.#collectionOfPart[value] = key;
  }
}

/** A snapshot's tables as its reads walk them: every range closed however its walk ends (closingRanges). */
function rangesOf(tables: ReturnType<typeof openTables>) {
  const { directory, byDid, blockSeqs, tail, partitions } = tables;
  return { directory: closingRanges(directory), byDid: closingRanges(byDid), blockSeqs: closingRanges(blockSeqs), tail: closingRanges(tail), partitions: closingRanges(partitions) };
}
