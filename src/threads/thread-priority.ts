import { setPriority } from 'node:os';

/** The niceness replay workers run at: the lowest priority, so any other runnable thread goes first. */
export const BACKGROUND_NICENESS = 19;

/**
 * Lowers the calling thread's scheduling priority to `niceness`, and only that thread's: on Linux
 * the nice value is per thread, and setpriority for "the caller" (no pid) changes the calling
 * thread alone, the main thread keeping its own — no thread id needed, so it works in a PID
 * namespace too. Lowering needs no privilege. Elsewhere the call would renice the whole process,
 * so it is not made. Where it cannot be (not Linux, or a sandbox that refuses setpriority) the
 * thread keeps the process's priority — slower live sends under load at worst, never a thread
 * that does not start.
 */
export function lowerThreadPriority(niceness = BACKGROUND_NICENESS): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(niceness);
  } catch {
    // Left at the process's priority (above).
  }
}
