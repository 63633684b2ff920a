import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The niceness replay workers run at: the lowest priority, so any other runnable thread goes first. */
export const BACKGROUND_NICENESS = 19;

/**
 * Lowers the calling thread's scheduling priority to `niceness`, and only that thread's: Linux
 * schedules threads one by one, and setpriority(PRIO_PROCESS, tid) given a thread id changes that
 * thread alone (the main thread keeps its own). Lowering needs no privilege. Returns the thread's
 * id, or undefined where it cannot (no /proc/thread-self: not Linux; or a sandbox that refuses
 * setpriority): there the thread keeps the process's priority — slower live sends under load at
 * worst, so it never stops the thread from starting.
 */
export function lowerThreadPriority(niceness = BACKGROUND_NICENESS): number | undefined {
  try {
    const link = readlinkSync('/proc/thread-self');
    const tid = Number(link.slice(link.lastIndexOf('/') + 1));
    setPriority(tid, niceness);
    return tid;
  } catch {
    return undefined;
  }
}
