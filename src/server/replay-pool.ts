import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Entry, EventKind } from '../events/index.ts';
import { decodeRecords, type BufferLocation } from '../store/index.ts';
import type { SubscriberFilter } from './filter.ts';
import type { Wire } from './wire.ts';

/** What a replay worker thread is started with. */
export interface ReplayWorkerData {
  location: BufferLocation;
  /** Decompressed block partitions the thread keeps for its readers. */
  blockCacheBytes: number;
  /** The zstd dictionary and level compressed subscribers' frames are made with (as EventCompressor's). */
  dictionary: Uint8Array;
  level: number;
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
  sealedEvents: number;
  didIndexUsable: boolean;
}

/** A read's answer: the events as stored records (codec.ts) and, for a zstd wire, their frames. */
export type ReplayReply = { id: number } & (
  | { trimmed: true }
  | {
      trimmed?: undefined;
      position: number;
      records: ArrayBuffer;
      /** The frames one after another, and where each ends. */
      frames?: { bytes: ArrayBuffer; ends: Uint32Array };
      /** Wanted events skipped for maxMessageSizeBytes. */
      tooLarge: number;
      inconsistency?: string;
    }
);

/** A FilterSpec's JSON: what a request carries of a filter. */
export function filterSpecJson(filter: SubscriberFilter): string {
  const spec: FilterSpec = { dids: [...filter.dids], collections: [...filter.collections], prefixes: filter.prefixes, kinds: [...filter.kinds], maxMessageBytes: filter.maxMessageBytes };
  return JSON.stringify(spec);
}

/** An answer's events (their JSON are views of the transferred buffer) and frames. */
export function decodeAnswer(answer: Extract<ReplayReply, { records: ArrayBuffer }>): { entries: Entry[]; frames?: Uint8Array[]; position: number } {
  const entries = decodeRecords(Buffer.from(answer.records));
  if (!answer.frames) return { entries, position: answer.position };
  const { bytes, ends } = answer.frames;
  const frames: Uint8Array[] = [];
  let start = 0;
  for (const end of ends) {
    frames.push(new Uint8Array(bytes, start, end - start));
    start = end;
  }
  return { entries, frames, position: answer.position };
}

type WorkerMessage = ReplayReply | { id: number; error: string } | { id: -1; ready: true };

interface Slot {
  worker: Worker | undefined;
  /** Settles when its worker has opened the buffer, or died first. */
  started: Promise<void>;
  pending: Map<number, { resolve: (reply: ReplayReply) => void; reject: (err: Error) => void }>;
}

/**
 * Replay workers when --replay-workers is not given: a core is the main thread's, the others
 * read replays — except on two cores or fewer, where none: there a worker takes CPU from the
 * main thread (ingest and every send) rather than using spare CPU, and bench/replay-live
 * measured live latency and replay throughput worse with one than with none (README, Performance).
 */
export function defaultReplayWorkers(cores = availableParallelism()): number {
  return cores <= 2 ? 0 : cores - 1;
}

/**
 * The build bundles the worker as dist/replay-worker.js beside dist/cli.js. Run from source (tsx:
 * tests, benchmarks), the worker is the .ts beside this file, and a worker thread does not
 * inherit tsx's loader, so it registers it first.
 */
function startWorker(workerData: ReplayWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./replay-worker.js', import.meta.url), { workerData });
  const source = new URL('./replay-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`, { eval: true, workerData });
}

/**
 * Worker threads that read replays from the buffer (LMDB reads, block decompression, decoding,
 * filtering, and the zstd frames of compressed subscribers), so none of it runs on the thread
 * that ingests and sends live events. A read goes to the thread with the fewest reads pending;
 * its answer's buffers are transferred, not copied.
 *
 * A worker holds the process open only while it has reads pending. One that dies rejects its
 * pending reads (the hub reads those on the main thread) and is started again for the next —
 * unless it died before it was ever ready: then it cannot start, and every read stays on the
 * main thread (logged once).
 */
export class ReplayPool {
  readonly #slots: Slot[];
  #nextId = 0;
  #closed = false;
  #unstartable: Error | undefined;

  constructor(
    readonly size: number,
    private readonly workerData: ReplayWorkerData,
    private readonly logger: Logger,
  ) {
    this.#slots = Array.from({ length: size }, () => ({ worker: undefined, started: Promise.resolve(), pending: new Map() }));
  }

  /** Resolves with the read's answer; rejects if its worker died or the read failed there. */
  read(request: Omit<ReplayRequest, 'id'>): Promise<ReplayReply> {
    if (this.#closed) return Promise.reject(new Error('the replay workers are closed'));
    if (this.#unstartable) return Promise.reject(this.#unstartable);
    let slot = this.#slots[0]!;
    for (const other of this.#slots) if (other.pending.size < slot.pending.size) slot = other;
    const worker = (slot.worker ??= this.#start(slot));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (slot.pending.size === 0) worker.ref();
      slot.pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id } satisfies ReplayRequest);
    });
  }

  /** Reads asked for and not answered yet. */
  get pendingReads(): number {
    let pending = 0;
    for (const slot of this.#slots) pending += slot.pending.size;
    return pending;
  }

  /** The running worker threads (tests terminate one to see its reads survive). */
  threads(): Worker[] {
    return this.#slots.flatMap((slot) => (slot.worker ? [slot.worker] : []));
  }

  /** Resolves once every worker has opened the buffer (so the first replays do not wait for it). */
  async ready(): Promise<void> {
    await Promise.all(
      this.#slots.map(async (slot) => {
        const worker = (slot.worker ??= this.#start(slot));
        worker.ref();
        try {
          await slot.started;
        } finally {
          if (slot.pending.size === 0) worker.unref();
        }
      }),
    );
  }

  /** Stops the workers; reads still pending are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((slot) => slot.worker?.terminate()));
  }

  #start(slot: Slot): Worker {
    const worker = startWorker(this.workerData);
    let started = false;
    let settle: (err?: Error) => void = () => {};
    slot.started = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    // A caller that never awaits it (read() alone) must not see an unhandled rejection.
    slot.started.catch(() => {});
    worker.unref();
    worker.on('message', (message: WorkerMessage) => {
      if ('ready' in message) {
        started = true;
        settle();
        return;
      }
      const waiting = slot.pending.get(message.id);
      if (!waiting) return;
      slot.pending.delete(message.id);
      if (slot.pending.size === 0) worker.unref();
      if ('error' in message) waiting.reject(new Error(message.error));
      else waiting.resolve(message);
    });
    const died = (err: Error) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      settle(err);
      if (!this.#closed && !started) {
        this.#unstartable ??= err;
        this.logger.error({ err }, 'a replay worker could not start: every replay reads on the main thread');
      } else if (!this.#closed) {
        this.logger.error({ err }, 'a replay worker stopped; its reads run on the main thread, and it is started again');
      }
      for (const waiting of slot.pending.values()) waiting.reject(err);
      slot.pending.clear();
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the replay worker exited with code ${code}`)));
    return worker;
  }
}
