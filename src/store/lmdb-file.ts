import { closeSync, openSync, readSync } from 'node:fs';

/** LMDB's meta page starts with this magic; opening anything else can crash the process natively. */
const LMDB_MAGIC = 0xbeefc0de;

/** Refuses a data file that is not LMDB's before LMDB opens it; a missing or empty one is fine (LMDB initializes it). */
export function assertLmdbFile(path: string): void {
  let header: Buffer;
  try {
    header = Buffer.alloc(28);
    const fd = openSync(path, 'r');
    try {
      if (readSync(fd, header, 0, 28, 0) < 28) return; // new or empty: LMDB initializes it
    } finally {
      closeSync(fd);
    }
  } catch {
    return; // no file yet
  }
  // After the page header: 16 bytes in LMDB 0.9's layout, 24 in LMDB 1.0's (lmdb-js's).
  if (header.readUInt32LE(16) !== LMDB_MAGIC && header.readUInt32LE(24) !== LMDB_MAGIC) {
    throw new Error(`${path} is not an LMDB database (no LMDB magic number); refusing to open it`);
  }
}
