import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { CommitMessage, SyncMessage, VerifyMode } from './check.ts';
import { VerifyError, type VerifyFailure } from './failure.ts';

/** One check for a worker: the message's bytes (copied into their own buffers) and the key. */
export type CheckRequest = { id: number; signingKey: string; mode: VerifyMode } & (
  | {
      kind: 'commit';
      repo: string;
      rev: string;
      commit: Uint8Array | undefined;
      prevData: Uint8Array | undefined;
      car: Uint8Array;
      ops: { action: unknown; path: unknown; cid: Uint8Array | undefined; prev: Uint8Array | undefined }[];
    }
  | { kind: 'sync'; did: string; rev: string; blocks: Uint8Array }
);

export interface CheckReply {
  id: number;
  failure?: { reason: VerifyFailure; message: string };
}

/**
 * What goes to a worker: the checks queued for it since the last message, in one. Each message
 * costs both threads (a wake-up, a clone), which per check was a sixth of a worker's time.
 */
export type WorkerRequest = { kind: 'checks'; checks: CheckRequest[] } | { kind: 'ping' };
/** What comes back: answers, several at a time (see check-worker.ts), or the pong. */
export type WorkerReply = { kind: 'answers'; answers: CheckReply[] } | { kind: 'pong' };

interface Slot {
  worker: Worker | undefined;
  pending: Map<number, { resolve: (failure: VerifyError | undefined) => void; reject: (err: Error) => void }>;
  /** Checks not posted yet, with the buffers they hand over: posted together in a microtask. */
  queued: CheckRequest[];
  transfer: ArrayBuffer[];
}

/**
 * The build bundles the worker as dist/check-worker.js beside dist/cli.js. Run from source (tsx:
 * tests, benchmarks), the worker is the .ts beside this file, and a worker thread does not
 * inherit tsx's loader, so it registers it first.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./check-worker.js', import.meta.url));
  const source = new URL('./check-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`, { eval: true });
}

/**
 * Worker threads that run the stateless part of verification (signature, MST inversion) for
 * the Verifier, a repo always on the same worker (its key stays imported there). The Verifier
 * applies the answers in upstream order, so how the workers interleave never shows.
 *
 * A worker holds the process open only while it has checks pending. One that dies rejects its
 * pending checks (the Verifier runs those itself) and is started again for the next — unless it
 * died before answering anything: then it cannot start, and all checks stay on the main thread.
 */
export class CheckPool {
  readonly #slots: Slot[];
  #nextId = 0;
  #closed = false;
  /** Set when a worker died before it ever answered: it cannot start, so none is started again. */
  #unstartable: Error | undefined;

  constructor(
    readonly size: number,
    private readonly logger: Logger,
  ) {
    this.#slots = Array.from({ length: size }, () => ({ worker: undefined, pending: new Map(), queued: [], transfer: [] }));
  }

  /**
   * Resolves with the failure, or undefined when the message passed; rejects if the worker died.
   * Checks asked for in one go (one turn of the caller) reach the worker as one message.
   */
  check(message: CommitMessage | SyncMessage, signingKey: string, mode: VerifyMode): Promise<VerifyError | undefined> {
    if (this.#closed) return Promise.reject(new Error('the verification workers are closed'));
    if (this.#unstartable) return Promise.reject(this.#unstartable);
    const id = this.#nextId++;
    const did = message.type === 'commit' ? message.repo : message.did;
    const slot = this.#slots[shardOf(did, this.#slots.length)]!; // shardOf is below the slot count
    // Copies: a message's bytes are views into the whole frame, which would be cloned with them.
    const request: CheckRequest =
      message.type === 'commit'
        ? {
            id,
            signingKey,
            mode,
            kind: 'commit',
            repo: message.repo,
            rev: message.rev,
            commit: message.proof.commit?.bytes.slice(),
            prevData: message.proof.prevData?.bytes.slice(),
            car: message.proof.car.bytes.slice(),
            ops: message.proof.ops.map((op) => ({ action: op.action, path: op.path, cid: op.cid?.bytes.slice(), prev: op.prev?.bytes.slice() })),
          }
        : { id, signingKey, mode, kind: 'sync', did: message.did, rev: message.rev, blocks: message.blocks.slice() };
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      if (slot.queued.length === 0) queueMicrotask(() => this.#post(slot));
      slot.queued.push(request);
      slot.transfer.push((request.kind === 'commit' ? request.car.buffer : request.blocks.buffer) as ArrayBuffer);
    });
  }

  #post(slot: Slot): void {
    const checks = slot.queued;
    const transfer = slot.transfer;
    slot.queued = [];
    slot.transfer = [];
    if (checks.length === 0) return; // rejected when the worker died
    if (this.#closed) {
      for (const { id } of checks) slot.pending.get(id)?.reject(new Error('the verification workers are closed'));
      return;
    }
    const worker = (slot.worker ??= this.#start(slot));
    worker.ref();
    worker.postMessage({ kind: 'checks', checks } satisfies WorkerRequest, transfer);
  }

  /** Resolves once every worker is running (so a benchmark does not time their start). */
  async ready(): Promise<void> {
    await Promise.all(
      this.#slots.map(async (slot) => {
        const worker = (slot.worker ??= this.#start(slot));
        await new Promise<void>((resolve, reject) => {
          worker.ref();
          worker.postMessage({ kind: 'ping' } satisfies WorkerRequest);
          const onMessage = (reply: WorkerReply) => {
            if (reply.kind !== 'pong') return;
            worker.off('message', onMessage);
            if (slot.pending.size === 0) worker.unref();
            resolve();
          };
          worker.on('message', onMessage);
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`the verification worker exited with code ${code}`)));
        });
      }),
    );
  }

  /** Stops the workers; checks still pending are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((slot) => slot.worker?.terminate()));
  }

  #start(slot: Slot): Worker {
    const worker = startWorker();
    let answered = false;
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      answered = true;
      if (reply.kind !== 'answers') return;
      for (const { id, failure } of reply.answers) {
        const waiting = slot.pending.get(id);
        if (!waiting) continue;
        slot.pending.delete(id);
        waiting.resolve(failure && new VerifyError(failure.reason, failure.message));
      }
      if (slot.pending.size === 0) worker.unref();
    });
    const died = (err: Error) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      if (!this.#closed && !answered) {
        this.#unstartable ??= err;
        this.logger.error({ err }, 'a verification worker could not start: every check runs on the main thread');
      } else if (!this.#closed) {
        this.logger.error({ err }, 'a verification worker stopped; its checks run on the main thread, and it is started again');
      }
      for (const waiting of slot.pending.values()) waiting.reject(err);
      slot.pending.clear();
      slot.queued = [];
      slot.transfer = [];
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the verification worker exited with code ${code}`)));
    return worker;
  }
}

/** A DID's worker: FNV-1a over its characters. */
function shardOf(did: string, count: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < did.length; i++) hash = Math.imul(hash ^ did.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % count;
}
