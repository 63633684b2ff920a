import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Entry, EventKind } from '../events/index.ts';
import { decodeRecords, type BufferLocation, type OldestHeld } from '../store/index.ts';
import { startWorkerModule, WorkerPool } from '../threads/index.ts';
import type { SubscriberFilter } from './filter.ts';
import type { Wire } from './wire.ts';

/** What a replay worker thread is started with. */
export interface ReplayWorkerData {
  location: BufferLocation;
  /** Decompressed block partitions the thread keeps for its readers. */
  blockCacheBytes: number;
  /** The zstd dictionary and levels compressed subscribers' frames are made with (as EventCompressor's). */
  dictionary: Uint8Array;
  level: number;
  replayLevel: number;
  /** Whether the thread lowers its own OS priority to nice 19 as it starts (ServerOptions.lowerReplayWorkerPriority). */
  lowerPriority: boolean;
}

/** A subscriber's filter as a worker rebuilds it (filter.ts's SubscriberFilter without its functions). */
export interface FilterSpec {
  dids: string[];
  collections: string[];
  prefixes: readonly string[];
  kinds: EventKind[];
  maxMessageBytes: number;
}

/** One read: the events with position < time_us ≤ end that the filter sends, within the limits. */
export interface ReplayRequest {
  id: number;
  position: number;
  end: number;
  /** A FilterSpec's JSON (made once per filter; a worker keeps the filters it rebuilt by it). */
  filter: string;
  /** The subscriber's wire: its frames' lengths decide maxMessageSizeBytes, and zstd ones are made by the worker. */
  wire: { name: Wire['name']; zstd: boolean };
  limits: { maxEntries: number; maxScanned: number; maxBytes: number };
  /** The subscriber's id, if a replay reads on after this read: the worker keeps the blocks merged ahead of it (ReadOptions.reader). */
  reader?: number;
  sealedEvents: number;
  didIndexUsable: boolean;
  /** The subscriber follows the oldest event: a position retention passed starts at the worker's snapshot's oldest (SnapshotReadOptions.fromOldest). */
  fromOldest?: boolean;
}

/** Tells every worker that a replay reads no more (its subscriber left or moved), so none keeps merges for it. */
export interface ReaderDoneMessage {
  readerDone: number;
}

/** A read's answer: the events as stored records (codec.ts) and, for a zstd wire, their frames. */
export type ReplayReply = { id: number } & (
  | { trimmed: true; refused?: string }
  | {
      trimmed?: undefined;
      position: number;
      records: ArrayBuffer;
      /** The frames one after another, and where each ends. */
      frames?: { bytes: ArrayBuffer; ends: Uint32Array };
      /** Wanted events skipped for maxMessageSizeBytes. */
      tooLarge: number;
      inconsistency?: string;
      /** With an inconsistency: the index rebuilds the worker's snapshot counted (SnapshotRead). */
      indexRebuilds?: number;
      /** Block partitions the thread has decompressed so far (its BlockReader's partitionsRead). */
      partitionsRead: number;
      /** A fromOldest read's start: the oldest event the worker's snapshot held. */
      fromOldest?: OldestHeld;
      /** LMDB's reason for a page the read found its way around (SnapshotRead.refused). */
      refused?: string;
    }
);

/** A FilterSpec's JSON: what a request carries of a filter. */
export function filterSpecJson(filter: SubscriberFilter): string {
  const spec: FilterSpec = { dids: [...filter.dids], collections: [...filter.collections], prefixes: filter.prefixes, kinds: [...filter.kinds], maxMessageBytes: filter.maxMessageBytes };
  return JSON.stringify(spec);
}

/** An answer's events (their JSON are views of the transferred buffer) and frames. */
export function decodeAnswer(answer: Extract<ReplayReply, { records: ArrayBuffer }>): { entries: Entry[]; frames?: Uint8Array[]; position: number; fromOldest?: OldestHeld } {
  const entries = decodeRecords(Buffer.from(answer.records));
  const { position, fromOldest } = answer;
  if (!answer.frames) return { entries, position, ...(fromOldest ? { fromOldest } : {}) };
  const { bytes, ends } = answer.frames;
  const frames: Uint8Array[] = [];
  let start = 0;
  for (const end of ends) {
    frames.push(new Uint8Array(bytes, start, end - start));
    start = end;
  }
  return { entries, frames, position, ...(fromOldest ? { fromOldest } : {}) };
}

/** Reads a replay's own thread may have pending beyond the least busy one's and still get its next read. */
const STICKY_EXTRA_PENDING = 2;

/**
 * Why a read failed in its worker, as the worker tells it: `damagedBlock`, a block's frame (a
 * DamagedBlockError: the main thread's read of the same block says it); `unreadable`, LMDB refused
 * a page the read met, or the read broke on what it read (an UnreadableBufferError: damage);
 * `fault`, anything else: the worker's snapshot older than the request, or a fault in its code
 * outside the store's read (SnapshotReader.read throws any other failure inside it, the filter's
 * included, as an UnreadableBufferError).
 */
export type ReplayFailureKind = 'damagedBlock' | 'unreadable' | 'fault';

/** A read that failed in its worker (the thread lives on): its error's message, and its kind. */
export interface ReplayFailure {
  id: number;
  error: string;
  kind: ReplayFailureKind;
  /** LMDB's reason for a page the read found its way around before it failed (SnapshotRead.refused): damage, whatever the kind. */
  refused?: string;
}

/** What a read that failed in its worker rejects with, told from a worker that died (whose reads reject with the pool's error). */
export class ReplayReadFailed extends Error {
  constructor(
    message: string,
    readonly kind: ReplayFailureKind,
    readonly refused?: string,
  ) {
    super(message);
  }
}

/** A thread's OS thread id, where there is a /proc (Linux). */
interface ThreadId {
  tid?: number;
}

type WorkerMessage = ReplayReply | ReplayFailure | ({ id: -1; ready: true } & ThreadId);

/**
 * Replay workers when --replay-workers is not given: a core is the main thread's, the others
 * read replays — except on two cores or fewer, where none: there a worker takes CPU from the
 * main thread (ingest and every send) rather than using spare CPU, and bench/replay-live
 * measured live latency and replay throughput worse with one than with none, even at nice 19
 * (README, Performance).
 */
export function defaultReplayWorkers(cores = availableParallelism()): number {
  return cores <= 2 ? 0 : cores - 1;
}

/**
 * Worker threads that read replays from the buffer (LMDB reads, block decompression, decoding,
 * filtering, and the zstd frames of compressed subscribers), so none of it runs on the thread
 * that ingests and sends live events. On Linux each thread lowers its own OS priority to nice 19
 * as it starts (replay-worker.ts), so it never takes a core the main thread wants. A replay's reads
 * go to a thread of its own (by its id) unless that one is busier than the least busy by more than
 * STICKY_EXTRA_PENDING reads; an answer's buffers are transferred, not copied.
 *
 * The threads live as a WorkerPool's (src/threads): one that dies rejects its pending reads
 * (the hub reads those on the main thread) and is started again for the next — unless it died
 * before it was ever ready: then it cannot start, and every read stays on the main thread.
 */
export class ReplayPool {
  readonly #pool: WorkerPool<ReplayReply, WorkerMessage, ThreadId>;
  #nextId = 0;

  constructor(
    readonly size: number,
    workerData: ReplayWorkerData,
    /** The pool's, and what handles its answers (ReplayReads). */
    readonly logger: Logger,
  ) {
    this.#pool = new WorkerPool<ReplayReply, WorkerMessage, ThreadId>({
      size,
      name: 'replay worker',
      fallback: { all: 'every replay reads on the main thread', pending: 'its reads run on the main thread' },
      logger,
      start: () => startWorkerModule(import.meta.url, 'replay-worker', workerData),
      slotExtra: () => ({}),
      onMessage: (slot, message) => {
        if ('ready' in message) {
          slot.tid = message.tid;
          return;
        }
        const waiting = this.#pool.answered(slot, message.id);
        if (!waiting) return;
        if ('error' in message) waiting.reject(new ReplayReadFailed(message.error, message.kind, message.refused));
        else waiting.resolve(message);
      },
    });
  }

  /** Resolves with the read's answer; rejects if its worker died, or with a ReplayReadFailed if the read failed there. */
  read(request: Omit<ReplayRequest, 'id'>): Promise<ReplayReply> {
    const refused = this.#pool.refusal();
    if (refused) return Promise.reject(refused);
    const { slots } = this.#pool;
    let slot = slots[0]!;
    for (const other of slots) if (other.pending.size < slot.pending.size) slot = other;
    // A replay's reads stay on one thread while it is not much busier than the least busy: that
    // thread keeps the blocks merged ahead of the replay (ReadOptions.reader), the others would not.
    const own = request.reader === undefined ? undefined : slots[request.reader % slots.length]!;
    if (own && own.pending.size <= slot.pending.size + STICKY_EXTRA_PENDING) slot = own;
    const worker = this.#pool.workerOf(slot);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (slot.pending.size === 0) worker.ref();
      slot.pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id } satisfies ReplayRequest);
    });
  }

  /**
   * Replay `reader` reads no more (ReplayReads.reset): every running thread forgets it, as the main
   * thread's store does, instead of keeping merges for it until READER_TTL_MS has passed.
   */
  readerDone(reader: number): void {
    for (const thread of this.#pool.threads()) thread.postMessage({ readerDone: reader } satisfies ReaderDoneMessage);
  }

  /** Reads asked for and not answered yet. */
  get pendingReads(): number {
    return this.#pool.pending;
  }

  /** The running worker threads (tests terminate one to see its reads survive). */
  threads(): Worker[] {
    return this.#pool.threads();
  }

  /** The OS thread ids of the threads that have started (Linux), for reading each one's CPU time in /proc/self/task (bench/replay-full). */
  threadIds(): number[] {
    return this.#pool.slots.flatMap((slot) => (slot.tid === undefined ? [] : [slot.tid]));
  }

  /** Resolves once every worker has opened the buffer (so the first replays do not wait for it). */
  ready(): Promise<void> {
    return this.#pool.ready();
  }

  /** Stops the workers; reads still pending are rejected. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}
