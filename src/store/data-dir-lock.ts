import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tryLock } from 'fs-native-extensions';

/**
 * One writer per data dir. Two gateways on one buffer would each skip the other's commits as
 * stale and split the subscribers between them, so the second is refused, naming the first.
 *
 * An OS lock (open-file-description fcntl lock on Linux, flock on macOS) on `contrail.lock`, not a
 * PID file: the kernel drops it when its holder exits however it exits (SIGKILL, crash), so there
 * is never a stale lock to judge, and it also holds across containers that share the volume on
 * one host. The file keeps the holder's pid for the message. Network file systems may not honour
 * it: keep the data dir on a local disk.
 */
const LOCK_FILE = 'contrail.lock';

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  const fd = openSync(path, 'a+');
  if (!tryLock(fd)) {
    closeSync(fd);
    throw new Error(`data dir ${dataDir} is in use by ${describeHolder(path)}; stop it first, or give this one another --data-dir`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }) + '\n', 0);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      closeSync(fd); // closing the descriptor releases the lock; the file stays for the next run
    },
  };
}

function describeHolder(path: string): string {
  try {
    const { pid, startedAt } = JSON.parse(readFileSync(path, 'utf8')) as { pid: number; startedAt: string };
    return `another contrail (pid ${pid}, running since ${startedAt})`;
  } catch {
    return 'another contrail (its pid is not recorded yet)';
  }
}
