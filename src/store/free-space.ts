import { existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Below this much free space the buffer is not opened. LMDB maps its file and grows it by writing
 * into the map; on a full disk that write is a SIGBUS or SIGSEGV (exit 135/139, nothing logged),
 * not an error it could report. 64 MiB is far more than opening needs and far less than any real
 * buffer: a disk that tight is full for every practical purpose.
 */
export const MIN_FREE_BYTES = 64 * 2 ** 20;

/** Refuses, with the numbers, to open a buffer on a file system with less than MIN_FREE_BYTES free. */
export function assertFreeSpace(dataDir: string, minFreeBytes = MIN_FREE_BYTES): void {
  const free = freeBytes(dataDir);
  if (free < minFreeBytes) {
    throw new Error(
      `only ${size(free)} free on the file system of ${dataDir}; contrail needs at least ${size(minFreeBytes)} free to open its buffer (free some space, or give --data-dir another disk)`,
    );
  }
}

/** Bytes an unprivileged process may still write on the file system of `dir` (or of its nearest existing parent). */
export function freeBytes(dir: string): number {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const { bavail, bsize } = statfsSync(existing);
  return bavail * bsize;
}

function size(bytes: number): string {
  return bytes < 2 ** 20 ? `${Math.floor(bytes / 1024)} KiB` : `${Math.floor(bytes / 2 ** 20)} MiB`;
}
