/**
 * Package threads holds what the stages that move work onto worker threads share: starting a
 * worker module from the build or from source, and a pool's thread lifecycle. Like atproto it is
 * not a stage of the data path — it imports none of them — so verify (signature and MST checks)
 * and server (replay reads) each keep only their own requests and answers.
 *
 * How a pool's threads live (worker-pool.ts): each slot's worker starts when first needed and
 * counts as started once it sends its first message. It holds the process open only while it has
 * requests pending, and while the pool closes, until it has exited (a close that did not could end
 * a process with nothing else to wait for before close() returned). A close stops each worker only
 * once it has started: terminated while a native addon registers (LMDB's), a worker aborts the
 * whole process. One that dies rejects its pending requests — the caller runs them on the main
 * thread — and is started again for the next; one that died before it ever started cannot start,
 * so the pool refuses every request from then on (all the work stays on the main thread), logged
 * once. Why: a missing or broken worker build must cost speed, never events.
 *
 * A worker thread may lower its own scheduling priority (thread-priority.ts): Linux schedules
 * each thread on its own, so one thread at nice 19 yields every contended core to the process's
 * other threads (and other processes) without touching their priority. Replay workers do.
 *
 * Files:
 *   worker-pool.ts      WorkerPool: slots, start and restart, pending requests, ready and close; startWorkerModule
 *   thread-priority.ts  lowerThreadPriority: a worker thread's own OS niceness (replay workers run at 19)
 */
export { BACKGROUND_NICENESS, lowerThreadPriority } from './thread-priority.ts';
export { startWorkerModule, WorkerPool, type Waiting, type WorkerSlot } from './worker-pool.ts';
