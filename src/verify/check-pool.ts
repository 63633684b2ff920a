import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { startWorkerModule, WorkerPool, type WorkerSlot } from '../threads/index.ts';
import type { Checked, CommitMessage, SyncMessage, VerifyMode } from './check.ts';
import { VerifyError, type VerifyFailure } from './failure.ts';

/**
 * Where a byte string is in a batch's buffer: the offset of its 4-byte length, then the bytes;
 * ABSENT for one that is absent.
 */
export type BytesAt = number;
/** The place of a byte string the message does not have (an optional CID). */
export const ABSENT: BytesAt = -1;

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
  /** Passed in `full` mode: the signed commit's MST root (Checked), a view of one buffer per reply. */
  data?: Uint8Array;
}

/**
 * What goes to a worker: the checks queued for it since the last message, in one, with every
 * byte string they name copied into one buffer that is handed over (not cloned). Per message
 * both threads pay a wake-up and a clone, and per object cloned more: a typed array per CID
 * cost the main thread more than the check's own work there.
 */
export interface WorkerRequest {
  checks: CheckRequest[];
  bytes: ArrayBuffer;
}
/** What comes back: answers, several at a time (see check-worker.ts), or that it runs. */
export type WorkerReply = { kind: 'answers'; answers: CheckReply[] } | { kind: 'ready' };

/** A check asked for and not yet posted. */
interface Queued {
  id: number;
  message: CommitMessage | SyncMessage;
  signingKey: string;
  mode: VerifyMode;
}

/** A slot's checks not posted yet: posted together in a microtask. */
interface Queue {
  queued: Queued[];
}

type Slot = WorkerSlot<Checked> & Queue;

/**
 * Worker threads that run the stateless part of verification (signature, MST inversion) for
 * the Verifier, a repo always on the same worker (its key stays imported there). The Verifier
 * applies the answers in upstream order, so how the workers interleave never shows.
 *
 * The threads live as a WorkerPool's (src/threads): one that dies rejects its pending checks
 * (the Verifier runs those itself) and is started again for the next — unless it died before it
 * was ever ready: then it cannot start, and all checks stay on the main thread.
 */
export class CheckPool {
  readonly #pool: WorkerPool<Checked, WorkerReply, Queue>;
  #nextId = 0;

  constructor(
    readonly size: number,
    logger: Logger,
  ) {
    this.#pool = new WorkerPool({
      size,
      name: 'verification worker',
      fallback: { all: 'every check runs on the main thread', pending: 'its checks run on the main thread' },
      logger,
      start: () => startWorkerModule(import.meta.url, 'check-worker'),
      slotExtra: () => ({ queued: [] }),
      onMessage: (slot, reply) => {
        if (reply.kind !== 'answers') return;
        for (const { id, failure, data } of reply.answers) this.#pool.answered(slot, id)?.resolve(failure ? { failure: new VerifyError(failure.reason, failure.message) } : { data });
      },
      onDied: (slot) => {
        slot.queued = [];
      },
    });
  }

  /**
   * Resolves with the outcome (Checked: the failure, or in `full` mode the commit's MST root);
   * rejects if the worker died. Checks asked for in one go (one turn of the caller) reach the
   * worker as one message.
   */
  check(message: CommitMessage | SyncMessage, signingKey: string, mode: VerifyMode): Promise<Checked> {
    const refused = this.#pool.refusal();
    if (refused) return Promise.reject(refused);
    const id = this.#nextId++;
    const did = message.type === 'commit' ? message.repo : message.did;
    const slot = this.#pool.slots[shardOf(did, this.size)]!; // shardOf is below the slot count
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
    const refused = this.#pool.refusal();
    if (refused) {
      for (const { id } of queued) this.#pool.answered(slot, id)?.reject(refused);
      return;
    }
    const { checks, bytes } = packChecks(queued);
    const worker = this.#pool.workerOf(slot);
    worker.ref();
    worker.postMessage({ checks, bytes } satisfies WorkerRequest, [bytes]);
  }

  /** Checks asked for and not answered yet (a test kills a worker with some in flight). */
  get pending(): number {
    return this.#pool.pending;
  }

  /** The running worker threads (a test terminates one to see its checks survive). */
  threads(): Worker[] {
    return this.#pool.threads();
  }

  /** Resolves once every worker runs (so a benchmark does not time their start). */
  ready(): Promise<void> {
    return this.#pool.ready();
  }

  /** Stops the workers; checks still pending are rejected. */
  close(): Promise<void> {
    return this.#pool.close();
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
    if (!bytes) return ABSENT;
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

/** A byte string of a batch's buffer (packChecks), as a view; `at` is a place put gave (not ABSENT). */
export function bytesAt(buffer: ArrayBuffer, at: BytesAt): Uint8Array {
  return new Uint8Array(buffer, at + 4, new DataView(buffer).getUint32(at));
}
