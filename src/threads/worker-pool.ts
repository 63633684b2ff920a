import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

/**
 * Starts the worker module `name` that sits beside the module at `besideUrl` (its
 * import.meta.url). The build bundles each worker as dist/<name>.js beside dist/cli.js. Run from
 * source (tsx: tests, benchmarks), the worker is the .ts file, and a worker thread does not
 * inherit tsx's loader, so it registers it first.
 */
export function startWorkerModule(besideUrl: string, name: string, workerData?: unknown): Worker {
  if (!besideUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, besideUrl), { workerData });
  const source = new URL(`./${name}.ts`, besideUrl).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`, { eval: true, workerData });
}

/** A request its worker has not answered yet. */
export interface Waiting<Answer> {
  resolve(answer: Answer): void;
  reject(err: Error): void;
}

/** One thread's place in a pool: its worker is started when first needed, and again after it died. */
export interface WorkerSlot<Answer> {
  worker: Worker | undefined;
  /** Settles when its worker sent its first message (it runs), or died first. */
  started: Promise<void>;
  pending: Map<number, Waiting<Answer>>;
}

export interface WorkerPoolOptions<Answer, Message, Extra extends object> {
  size: number;
  /** What a thread is called in errors and logs ("replay worker"). */
  name: string;
  /** Where its work runs when no thread can ("every replay reads on the main thread"), and a dead thread's pending work ("its reads run on the main thread"). */
  fallback: { all: string; pending: string };
  logger: Logger;
  start(): Worker;
  /** What else a slot holds (the pool's own per-thread state). */
  slotExtra(): Extra;
  /** A message from a slot's worker (its first one is also what marks it started). */
  onMessage(slot: WorkerSlot<Answer> & Extra, message: Message): void;
  /** A slot's worker died; its pending requests are rejected already. */
  onDied?(slot: WorkerSlot<Answer> & Extra): void;
}

/**
 * The lifecycle of a pool's worker threads, shared by the replay and verification pools. A
 * worker holds the process open only while it has requests pending, and from close() until it has
 * exited; close() stops it only once it has started. One that dies rejects its
 * pending requests (the caller runs them on the main thread) and is started again for the next —
 * unless it died before it ever sent a message: then it cannot start, every request is refused
 * (so all the work stays on the main thread), and that is logged once.
 */
export class WorkerPool<Answer, Message, Extra extends object = object> {
  readonly slots: (WorkerSlot<Answer> & Extra)[];
  #closed = false;
  #unstartable: Error | undefined;

  constructor(private readonly options: WorkerPoolOptions<Answer, Message, Extra>) {
    this.slots = Array.from({ length: options.size }, () => ({ worker: undefined, started: Promise.resolve(), pending: new Map(), ...options.slotExtra() }));
  }

  /** Why a request cannot be taken (the pool is closed, or its threads cannot start); undefined when it can. */
  refusal(): Error | undefined {
    return this.#closed ? new Error(`the ${this.options.name}s are closed`) : this.#unstartable;
  }

  /** The slot's worker, started if it is not running. */
  workerOf(slot: WorkerSlot<Answer> & Extra): Worker {
    return (slot.worker ??= this.#start(slot));
  }

  /** Takes a request's waiting caller off the slot; the worker stops holding the process open with the last. */
  answered(slot: WorkerSlot<Answer>, id: number): Waiting<Answer> | undefined {
    const waiting = slot.pending.get(id);
    if (!waiting) return undefined;
    slot.pending.delete(id);
    // A closing pool's workers hold the process open until they have exited (close).
    if (slot.pending.size === 0 && !this.#closed) slot.worker?.unref();
    return waiting;
  }

  /** Requests asked for and not answered yet. */
  get pending(): number {
    let pending = 0;
    for (const slot of this.slots) pending += slot.pending.size;
    return pending;
  }

  /** The running worker threads (tests terminate one to see its requests survive). */
  threads(): Worker[] {
    return this.slots.flatMap((slot) => (slot.worker ? [slot.worker] : []));
  }

  /** Resolves once every worker runs (so the first requests, or a benchmark, do not wait for them). */
  async ready(): Promise<void> {
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = this.workerOf(slot);
        worker.ref();
        try {
          await slot.started;
        } finally {
          if (slot.pending.size === 0 && !this.#closed) worker.unref();
        }
      }),
    );
  }

  /** Stops the workers, each once it has started (or died); requests still pending are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        if (!worker) return;
        // Held open until it has exited: an unreferenced worker's exit does not keep the event loop
        // running, which could end before terminate() resolved (a test process cancelled its tests
        // so when the answer to a read in flight came first and unreferenced the worker again).
        worker.ref();
        // Not while it loads: a worker terminated while a native addon registers (LMDB's) aborted
        // the whole process (FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw), as a start
        // that failed at once (a port in use) closed the workers it had just started.
        await slot.started.catch(() => {});
        await worker.terminate();
      }),
    );
  }

  #start(slot: WorkerSlot<Answer> & Extra): Worker {
    const { name, fallback, logger } = this.options;
    const worker = this.options.start();
    let started = false;
    let settle: (err?: Error) => void = () => {};
    slot.started = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    // A caller that never awaits it (a request alone) must not see an unhandled rejection.
    slot.started.catch(() => {});
    worker.unref();
    worker.on('message', (message: Message) => {
      if (!started) {
        started = true;
        settle();
      }
      this.options.onMessage(slot, message);
    });
    const died = (err: Error) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      settle(err);
      if (!this.#closed && !started) {
        this.#unstartable ??= err;
        logger.error({ err }, `a ${name} could not start: ${fallback.all}`);
      } else if (!this.#closed) {
        logger.error({ err }, `a ${name} stopped; ${fallback.pending}, and it is started again`);
      }
      for (const waiting of slot.pending.values()) waiting.reject(err);
      slot.pending.clear();
      this.options.onDied?.(slot);
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the ${name} exited with code ${code}`)));
    return worker;
  }
}
