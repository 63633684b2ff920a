import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { CommitMessage, SyncMessage, VerifyMode } from './check.ts';
import { VerifyError, type VerifyFailure } from './failure.ts';

/**
 * Where a byte string is in a batch's buffer: the offset of its 4-byte length, then the bytes;
 * -1 for one that is absent.
 */
export type BytesAt = number;

/** One check for a worker: the message's fields, its bytes as places in the batch's buffer, and the key. */
export type CheckRequest = { id: number; signingKey: string; mode: VerifyMode } & (
  | {
      kind: 'commit';
      repo: string;
      rev: string;
      commit: BytesAt;
      prevData: BytesAt;
      car: BytesAt;
      ops: { action: unknown; path: unknown; cid: BytesAt; prev: BytesAt }[];
    }
  | { kind: 'sync'; did: string; rev: string; blocks: BytesAt }
);

export interface CheckReply {
  id: number;
  failure?: { reason: VerifyFailure; message: string };
}

/**
 * What goes to a worker: the checks queued for it since the last message, in one, with every
 * byte string they name copied into one buffer that is handed over (not cloned). Per message
 * both threads pay a wake-up and a clone, and per object cloned more: a typed array per CID
 * cost the main thread more than the check's own work there.
 */
export type WorkerRequest = { kind: 'checks'; checks: CheckRequest[]; bytes: ArrayBuffer } | { kind: 'ping' };
/** What comes back: answers, several at a time (see check-worker.ts), or the pong. */
export type WorkerReply = { kind: 'answers'; answers: CheckReply[] } | { kind: 'pong' };

/** A check asked for and not yet posted. */
interface Queued {
  id: number;
  message: CommitMessage | SyncMessage;
  signingKey: string;
  mode: VerifyMode;
}

interface Slot {
  worker: Worker | undefined;
  pending: Map<number, { resolve: (failure: VerifyError | undefined) => void; reject: (err: Error) => void }>;
  /** Checks not posted yet: posted together in a microtask. */
  queued: Queued[];
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
    this.#slots = Array.from({ length: size }, () => ({ worker: undefined, pending: new Map(), queued: [] }));
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
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      if (slot.queued.length === 0) queueMicrotask(() => this.#post(slot));
      slot.queued.push({ id, message, signingKey, mode });
    });
  }

  #post(slot: Slot): void {
    const queued = slot.queued;
    slot.queued = [];
    if (queued.length === 0) return; // rejected when the worker died
    if (this.#closed) {
      for (const { id } of queued) slot.pending.get(id)?.reject(new Error('the verification workers are closed'));
      return;
    }
    const { checks, bytes } = packChecks(queued);
    const worker = (slot.worker ??= this.#start(slot));
    worker.ref();
    worker.postMessage({ kind: 'checks', checks, bytes } satisfies WorkerRequest, [bytes]);
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

/**
 * The checks as a worker gets them: their byte strings — a message's are views into its whole
 * frame, which must stay here — copied into one new buffer, each after its length.
 */
function packChecks(queued: Queued[]): { checks: CheckRequest[]; bytes: ArrayBuffer } {
  let size = 0;
  const measure = (bytes: Uint8Array | undefined) => {
    if (bytes) size += 4 + bytes.length;
  };
  for (const { message } of queued) {
    if (message.type === 'sync') {
      measure(message.blocks);
      continue;
    }
    const { proof } = message;
    measure(proof.car.bytes);
    measure(proof.commit?.bytes);
    measure(proof.prevData?.bytes);
    for (const op of proof.ops) {
      measure(op.cid?.bytes);
      measure(op.prev?.bytes);
    }
  }
  const buffer = new ArrayBuffer(size);
  const view = new DataView(buffer);
  const target = new Uint8Array(buffer);
  let at = 0;
  const put = (bytes: Uint8Array | undefined): BytesAt => {
    if (!bytes) return -1;
    const offset = at;
    view.setUint32(at, bytes.length);
    target.set(bytes, at + 4);
    at += 4 + bytes.length;
    return offset;
  };
  const checks = queued.map(({ id, message, signingKey, mode }): CheckRequest => {
    if (message.type === 'sync') return { id, signingKey, mode, kind: 'sync', did: message.did, rev: message.rev, blocks: put(message.blocks) };
    const { proof } = message;
    return {
      id,
      signingKey,
      mode,
      kind: 'commit',
      repo: message.repo,
      rev: message.rev,
      car: put(proof.car.bytes),
      commit: put(proof.commit?.bytes),
      prevData: put(proof.prevData?.bytes),
      ops: proof.ops.map((op) => ({ action: op.action, path: op.path, cid: put(op.cid?.bytes), prev: put(op.prev?.bytes) })),
    };
  });
  return { checks, bytes: buffer };
}

/** A byte string of a batch's buffer (packChecks), as a view; undefined for -1. */
export function bytesAt(buffer: ArrayBuffer, at: BytesAt): Uint8Array | undefined {
  if (at < 0) return undefined;
  return new Uint8Array(buffer, at + 4, new DataView(buffer).getUint32(at));
}
