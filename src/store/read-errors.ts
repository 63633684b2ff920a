import type { Database, Key, RangeOptions } from 'lmdb';

/**
 * A read of the buffer that failed for another reason than a damaged block (DamagedBlockError,
 * blocks.ts): LMDB refused it (MDB_CORRUPTED, MDB_PAGE_NOTFOUND: pages of data.mdb damaged on
 * disk, or a page of the per-DID index or the block directory that is no longer a B-tree page),
 * or it broke on what it read. Unlike a damaged block, nothing says which events are lost or where
 * a reader could resume: the read after `position` cannot be made, and may fail again.
 */
export class UnreadableBufferError extends Error {
  constructor(
    /** The time_us the read was to continue after. */
    readonly position: number,
    cause: unknown,
  ) {
    super(`the buffer cannot be read after time_us ${position} (${cause instanceof Error ? cause.message : String(cause)}): its file may be damaged on disk`, { cause });
  }
}

/**
 * Failures' reasons, each to be said once: a reason is kept as its message without the numbers in
 * it (a position, a byte offset), so that the same failure at another place is the same reason,
 * and the reasons kept stay few however long one recurs.
 */
export class ReasonsSaid {
  readonly #kinds = new Set<string>();

  /** True the first time a reason of this kind is met (it is kept from then on). */
  first(reason: string): boolean {
    const kind = reason.replace(/\d+/g, '#');
    if (this.#kinds.has(kind)) return false;
    this.#kinds.add(kind);
    return true;
  }

  get any(): boolean {
    return this.#kinds.size > 0;
  }

  clear(): void {
    this.#kinds.clear();
  }
}

/**
 * What `read` of the buffer gives, or the UnreadableBufferError it threw (the store counted, logged
 * and renewed it), for callers that answer that otherwise than by failing: a 503, a gauge's NaN,
 * a notice without a seq, a stream's close.
 */
export function orUnreadable<Value>(read: () => Value): Value | UnreadableBufferError {
  try {
    return read();
  } catch (err) {
    if (err instanceof UnreadableBufferError) return err;
    throw err;
  }
}

/** The buffer's oldest event (EventStore.oldest), or the UnreadableBufferError its read of the block directory threw. */
export function oldestOrUnreadable<Oldest>(store: { oldest(): Oldest }): Oldest | UnreadableBufferError {
  return orUnreadable(() => store.oldest());
}

/**
 * A table as a reader that shares its tables with replay workers sees it: its ranges closed
 * however their walks end (closedOnError), and the count of a key's values made after such a
 * descent to the key. SealedReader and SnapshotReader are given their tables so (closingRanges),
 * so no range on a worker's read path can leave the failed transaction held.
 */
export interface ClosingRanges<V, K extends Key> {
  getRange(options?: RangeOptions): Iterable<{ key: K; value: V }>;
  getKeys(options?: RangeOptions): Iterable<K>;
  getValues(key: K, options?: RangeOptions): Iterable<V>;
  /**
   * lmdb-js's count leaves its cursor, and the transaction LMDB failed, open when LMDB refuses a
   * page on the key's path (read.js: lmdbError before finishCursor): the same descent first, in a
   * range closed on error, fails instead.
   */
  getValuesCount(key: K): number;
}

export function closingRanges<V, K extends Key>(table: Database<V, K>): ClosingRanges<V, K> {
  return {
    getRange: (options) => closedOnError(table.getRange(options)),
    getKeys: (options) => closedOnError(table.getKeys(options)),
    getValues: (key, options) => closedOnError(table.getValues(key, options)),
    getValuesCount: (key) => {
      const descent = closedOnError(table.getValues(key, { limit: 1 }));
      descent.next();
      descent.return(undefined);
      return table.getValuesCount(key);
    },
  };
}

/**
 * The entries of an LMDB range (getRange, getKeys, getValues), its cursor closed however the walk
 * ends. lmdb-js closes it when the range ends or the loop leaves it, but not when LMDB refuses a
 * page mid-walk (its iterator throws before closing): the open cursor then holds the read
 * transaction LMDB marked failed, and lmdb-js renews into that same transaction, every read in it
 * failing with MDB_BAD_TXN, until a commit. A replay worker cannot commit to renew it, as the
 * EventStore does.
 */
export function* closedOnError<T>(range: Iterable<T>): Generator<T> {
  const iterator = range[Symbol.iterator]();
  try {
    for (let step = iterator.next(); !step.done; step = iterator.next()) yield step.value;
  } finally {
    iterator.return?.();
  }
}
