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

/**
 * The LMDB map to reserve for a buffer bounded at `maxBufferBytes`: twice the bound, so the map
 * never has to grow. It is address space, not memory or disk: without MDB_WRITEMAP the file grows
 * only as pages are written. lmdb-js grows a full map by mapping the file again at about twice the
 * size and never unmaps the old map (a reader in another thread may still point into it), so a
 * buffer that grew from nothing was mapped once per doubling, and the pages each old map had
 * touched stayed in the resident set: in a 20-minute soak ~1 GB of file-backed memory for a
 * 440 MB data.mdb. A buffer that outgrows the reservation is still mapped again, once per doubling.
 */
export function mapSizeFor(maxBufferBytes: number): number {
  return Math.min(2 * maxBufferBytes, LARGEST_MAP_BYTES);
}
/** 16 TiB: x86-64's 128 TiB of user address space holds it with room for everything else. */
const LARGEST_MAP_BYTES = 2 ** 44;

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

export function openMeta(root: RootDatabase): Database<unknown, string> {
  return root.openDB<unknown, string>({ name: 'meta' });
}

/** The buffer's tables other than `meta` and `dictionaries` (see the store's design note). */
export function openTables(root: RootDatabase) {
  return {
    /** Committed events not yet sealed into a block: a commit's newest time_us → its events' records (codec.ts). */
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
