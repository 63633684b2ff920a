import { open, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import type { BlockInfo, BlockKey } from './blocks.ts';
import { postingEncoding } from './did-keys.ts';

/**
 * Where a buffer lives and how its LMDB environment is opened. lmdb-js shares one environment
 * per path among a process's threads, and a thread that opens it with other flags (noSync,
 * overlapping sync) is refused: so a replay worker thread opens it from the same location the
 * EventStore did (see snapshot-reader.ts).
 */
export interface BufferLocation {
  dataDir: string;
  readOnly: boolean;
  fsync: boolean;
  mapSizeBytes?: number;
}

export function openEnvironment(location: BufferLocation): RootDatabase {
  // noSubdir: false — lmdb-js otherwise treats a path with an extension ("contrail.d") as a file.
  return open({
    path: location.dataDir,
    maxDbs: 16,
    readOnly: location.readOnly,
    noSubdir: false,
    noSync: !location.fsync,
    ...(location.mapSizeBytes ? { mapSize: location.mapSizeBytes } : {}),
  });
}

/** The `meta` table's keys (see the store's design note). */
export const META = {
  cursor: 'upstreamCursor',
  lastTimeUs: 'lastTimeUs',
  trimmedUpTo: 'trimmedUpTo',
  lastSeq: 'lastSeq',
  format: 'format',
  didIndexBroken: 'didIndexBroken',
} as const;

export function openMeta(root: RootDatabase): Database<unknown, string> {
  return root.openDB<unknown, string>({ name: 'meta' });
}

/** The buffer's tables other than `meta` and `dictionaries` (see the store's design note). */
export function openTables(root: RootDatabase) {
  return {
    /** Committed events not yet sealed into a block: time_us → record (codec.ts). */
    tail: root.openDB<Buffer, number>({ name: 'tail', encoding: 'binary' }),
    blocks: root.openDB<Buffer, BlockKey>({ name: 'blocks', encoding: 'binary' }),
    directory: root.openDB<BlockInfo, number>({ name: 'directory' }),
    /** A block's last seq → its end, so a seq finds its block in one seek. */
    blockSeqs: root.openDB<number, number>({ name: 'blockSeqs' }),
    /** The per-DID index (did-keys.ts); the per-collection index is the blocks' partitioning. */
    // dupFixed is lmdb-js's (MDB_DUPFIXED), missing from its typings.
    byDid: root.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoder: postingEncoding, dupSort: true, dupFixed: true } as DatabaseOptions & { name: string }),
    partitions: root.openDB<number, string>({ name: 'partitions' }),
    revs: root.openDB<string, string>({ name: 'revs', encoding: 'string' }),
  };
}
