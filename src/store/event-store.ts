import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { TransactionFlags, asBinary, open, type Database, type RootDatabase } from 'lmdb';
import { Gauge, type Registry } from 'prom-client';
import type { Entry } from '../events/index.ts';
import { detachJson, encodeBatch, storedEntryEncoder } from './codec.ts';
import { HotLog } from './hot-log.ts';
import { lockDataDir, type DataDirLock } from './data-dir-lock.ts';
import { assertFreeSpace } from './free-space.ts';
import { checkPreviousRun, markRunning, markStopped, type PreviousRun } from './run-marker.ts';

export interface UpstreamCursor {
  url: string;
  seq: number;
}

export interface Batch {
  entries: Entry[];
  /** The upstream position these entries complete; undefined when no frame advanced it. */
  cursor?: UpstreamCursor;
  /** Last commit rev per DID among the batch's commits. */
  revs: Map<string, string>;
}

/**
 * A predicate on an event's metadata (did, kind, collection; json.byteLength). For events read
 * from disk, `json` is only valid during the call: a filter must not keep the entry it is given.
 */
export interface EventFilter {
  (entry: Entry): boolean;
}

export interface ReadResult {
  entries: Entry[];
  /** The newest time_us examined (matching or not); the next read continues after it. */
  position: number;
}

export interface ReadOptions {
  maxEntries: number;
  /** Stop after examining this many events even if fewer matched (bounds one read's time). */
  maxScanned?: number;
  filter?: EventFilter;
}

export interface StoreSpan {
  oldestTimeUs: number | undefined;
  newestTimeUs: number | undefined;
  eventCount: number;
  /** Bytes of LMDB pages the events occupy. */
  bytes: number;
}

export interface EventStoreOptions {
  dataDir: string;
  hotLogBytes: number;
  registry?: Registry;
  readOnly?: boolean;
  /**
   * Flush every commit to disk as it happens (default; LMDB's overlapping sync, so a power loss
   * never tears the buffer), at a few ms per commit. Without it a commit survives a killed
   * process, the buffer is synced every second in the background, and a buffer a machine crash
   * may have torn is set aside at the next start (run-marker.ts).
   */
  fsync?: boolean;
}

const COMMIT_WITHOUT_WAITING_FOR_FLUSH = TransactionFlags.ABORTABLE | TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH;
const SYNC_INTERVAL_MS = 1_000;
const META_CURSOR = 'upstreamCursor';
const META_LAST_TIME = 'lastTimeUs';
const META_TRIMMED = 'trimmedUpTo';
const META_LAST_SEQ = 'lastSeq';
const META_FORMAT = 'format';
/** The stored layout's version: 2 added seq. A buffer without it was written by an older contrail. */
const FORMAT = 2;

/**
 * LMDB keys are at most 1978 bytes but a DID may be 2048 characters, so long DIDs are keyed by
 * their SHA-256 (no DID starts with "sha256:"). Without this, one commit from such a DID would
 * fail its batch's transaction on every retry and stall ingest for good.
 */
const MAX_PLAIN_REV_KEY = 1024;
function revKey(did: string): string {
  return did.length <= MAX_PLAIN_REV_KEY ? did : `sha256:${createHash('sha256').update(did).digest('hex')}`;
}

export class EventStore {
  readonly hotLog: HotLog;
  readonly #root: RootDatabase;
  readonly #events: Database<Entry, number>;
  readonly #seqs: Database<number, number>;
  readonly #revs: Database<string, string>;
  readonly #meta: Database<unknown, string>;
  readonly #listeners: Array<(entries: readonly Entry[]) => void> = [];
  #lastTimeUs: number;
  #lastSeq: number;
  #trimmedUpTo: number;
  #cursor: UpstreamCursor | undefined;
  readonly #dataDir: string;
  readonly #writable: boolean;
  readonly #syncTimer: NodeJS.Timeout | undefined;
  readonly #lock: DataDirLock | undefined;
  /** What the previous run left behind, for the gateway to report. */
  readonly previousRun: PreviousRun = { unclean: false };

  constructor(options: EventStoreOptions) {
    const fsync = options.fsync ?? true;
    this.#dataDir = options.dataDir;
    this.#writable = !options.readOnly;
    if (this.#writable) {
      assertFreeSpace(options.dataDir);
      mkdirSync(options.dataDir, { recursive: true });
      // Before anything else: a second gateway must not even read the first one's run marker.
      this.#lock = lockDataDir(options.dataDir);
      this.previousRun = this.#releasingLockOnError(() => checkPreviousRun(options.dataDir));
    }
    this.#releasingLockOnError(() => assertLmdbFile(join(options.dataDir, 'data.mdb')));
    // noSubdir: false — lmdb-js otherwise treats a path with an extension ("contrail.d") as a file.
    this.#root = this.#releasingLockOnError(() => open({ path: options.dataDir, maxDbs: 8, readOnly: options.readOnly, noSubdir: false, noSync: !fsync }));
    const eventsOptions = { name: 'events', encoder: storedEntryEncoder }; // `encoder` is missing from lmdb's DatabaseOptions type
    this.#events = this.#root.openDB<Entry, number>(eventsOptions);
    this.#meta = this.#root.openDB<unknown, string>({ name: 'meta' });
    try {
      this.#checkFormat(options.dataDir);
    } catch (err) {
      void this.#root.close();
      this.#lock?.release();
      throw err;
    }
    this.#seqs = this.#root.openDB<number, number>({ name: 'seqs' });
    this.#revs = this.#root.openDB<string, string>({ name: 'revs', encoding: 'string' });
    if (this.#writable) {
      markRunning(options.dataDir, fsync);
      if (!fsync) {
        this.#syncTimer = setInterval(() => syncToDisk(this.#root, () => {}), SYNC_INTERVAL_MS);
        this.#syncTimer.unref();
      }
    }
    const newest = this.#newestKey();
    this.#lastSeq = (this.#meta.get(META_LAST_SEQ) as number | undefined) ?? 0;
    this.#lastTimeUs = Math.max((this.#meta.get(META_LAST_TIME) as number | undefined) ?? 0, newest ?? 0);
    this.#trimmedUpTo = (this.#meta.get(META_TRIMMED) as number | undefined) ?? 0;
    this.#cursor = this.#meta.get(META_CURSOR) as UpstreamCursor | undefined;
    this.hotLog = new HotLog(options.hotLogBytes, newest ?? 0);
    if (options.registry) this.#registerSpanGauges(options.registry);
  }

  /** The newest time_us ever issued to a stored event: the clock continues above it. */
  get lastTimeUs(): number {
    return this.#lastTimeUs;
  }

  /** The newest seq ever given to a stored event (0 before the first). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  get upstreamCursor(): UpstreamCursor | undefined {
    return this.#cursor;
  }

  /** Events at or below this time_us were removed by retention. */
  get trimmedUpTo(): number {
    return this.#trimmedUpTo;
  }

  getRev(did: string): string | undefined {
    return this.#revs.get(revKey(did));
  }

  onCommitted(listener: (entries: readonly Entry[]) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Commits the batch atomically, giving its events the next seqs; resolves once durable, after
   * readers can see it.
   */
  async commit(batch: Batch): Promise<void> {
    let seq = this.#lastSeq;
    for (const entry of batch.entries) entry.seq = ++seq;
    this.#write(batch);
  }

  /**
   * Commits events whose time_us and seq were assigned elsewhere (a replication leader), as
   * given. Both must increase strictly, from the store's last ones and within the batch; a batch
   * that breaks this is refused whole (nothing is written) with an error saying where.
   */
  async commitAssigned(batch: Batch): Promise<void> {
    let { lastTimeUs, lastSeq } = this;
    for (const entry of batch.entries) {
      if (entry.seq === undefined || !(entry.seq > lastSeq) || !(entry.timeUs > lastTimeUs)) {
        throw new Error(
          `commitAssigned: event (time_us ${entry.timeUs}, seq ${entry.seq}) does not follow (time_us ${lastTimeUs}, seq ${lastSeq}); both must increase strictly`,
        );
      }
      lastTimeUs = entry.timeUs;
      lastSeq = entry.seq;
    }
    this.#write(batch);
  }

  #write(batch: Batch): void {
    const { entries, cursor, revs } = batch;
    const lastTimeUs = entries.length > 0 ? entries[entries.length - 1].timeUs : this.#lastTimeUs;
    const lastSeq = entries.length > 0 ? entries[entries.length - 1].seq! : this.#lastSeq;
    const encoded = encodeBatch(entries);
    // Committed here, on this thread: an event waits for no worker-thread round trip before
    // subscribers see it (that hop dominated ingest-to-client latency). Abortable, so an error
    // thrown while writing leaves nothing of the batch; the flush to disk overlaps what follows.
    this.#root.transactionSync(() => {
      for (let i = 0; i < entries.length; i++) {
        this.#events.putSync(entries[i].timeUs, asBinary(encoded[i]) as unknown as Entry);
        this.#seqs.putSync(entries[i].seq!, entries[i].timeUs);
      }
      for (const [did, rev] of revs) this.#revs.putSync(revKey(did), rev);
      if (cursor) this.#meta.putSync(META_CURSOR, cursor);
      this.#meta.putSync(META_LAST_TIME, lastTimeUs);
      this.#meta.putSync(META_LAST_SEQ, lastSeq);
    }, COMMIT_WITHOUT_WAITING_FOR_FLUSH);
    if (cursor) this.#cursor = cursor;
    this.#lastTimeUs = lastTimeUs;
    this.#lastSeq = lastSeq;
    if (entries.length === 0) return;
    this.hotLog.append(entries);
    for (const listener of this.#listeners) listener(entries);
  }

  /**
   * The time_us of the oldest stored event whose seq is at or above `seq` — where an inclusive
   * seq cursor starts — or undefined when no stored event has one yet (the cursor is live).
   */
  timeUsAtSeq(seq: number): number | undefined {
    for (const { value } of this.#seqs.getRange({ start: Math.max(seq, 0), limit: 1 })) return value;
    return undefined;
  }

  /**
   * Events with time_us > position, oldest first, that pass the filter: at most maxEntries of
   * them, examining at most maxScanned. Synchronous, so it never interleaves with a commit.
   */
  readAfter(position: number, options: ReadOptions): ReadResult {
    const { maxEntries, maxScanned = Infinity, filter } = options;
    const entries: Entry[] = [];
    let scanned = 0;
    /** A disk entry's JSON is a view of lmdb's read buffer until the next step: kept ones get a copy. */
    const visit = (entry: Entry, fromDisk = false): boolean => {
      position = entry.timeUs;
      if (!filter || filter(entry)) entries.push(fromDisk ? detachJson(entry) : entry);
      return entries.length < maxEntries && ++scanned < maxScanned;
    };
    if (!this.hotLog.covers(position)) {
      // Disk up to the hot log's floor, then (if the read is not full yet) the hot log.
      for (const { key, value: entry } of this.#events.getRange({ start: position + 1, end: this.hotLog.floor, inclusiveEnd: true })) {
        entry.timeUs = key;
        if (!visit(entry, true)) return { entries, position };
      }
      position = Math.max(position, this.hotLog.floor);
    }
    this.hotLog.scan(position, (entry) => visit(entry));
    return { entries, position };
  }

  span(): StoreSpan {
    const stats = this.#events.getStats() as {
      entryCount: number;
      pageSize: number;
      treeBranchPageCount: number;
      treeLeafPageCount: number;
      overflowPages: number;
    };
    return {
      oldestTimeUs: this.#oldestKey(),
      newestTimeUs: this.#newestKey(),
      eventCount: stats.entryCount,
      bytes: (stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages) * stats.pageSize,
    };
  }

  /** Removes up to maxEvents of the oldest events with time_us < before; returns how many. */
  async trimBefore(before: number, maxEvents: number): Promise<number> {
    const keys = [...this.#events.getKeys({ end: before, limit: maxEvents })];
    if (keys.length === 0) return 0;
    const trimmedUpTo = keys[keys.length - 1];
    const lastTrimmedSeq = this.#events.get(trimmedUpTo)!.seq!;
    await this.#root.childTransaction(() => {
      for (const key of keys) this.#events.removeSync(key);
      for (const seq of this.#seqs.getKeys({ end: lastTrimmedSeq, inclusiveEnd: true })) this.#seqs.removeSync(seq);
      this.#meta.putSync(META_TRIMMED, trimmedUpTo);
    });
    this.#trimmedUpTo = Math.max(this.#trimmedUpTo, trimmedUpTo);
    // Readers served from memory must not see what readers served from disk no longer can.
    this.hotLog.dropThrough(trimmedUpTo);
    return keys.length;
  }

  /** Removes the oldest maxEvents events, whatever their age; returns how many. */
  async trimOldest(maxEvents: number): Promise<number> {
    return this.trimBefore(Infinity, maxEvents);
  }

  /** Size of the LMDB data file on disk (it does not shrink when events are trimmed; pages are reused). */
  fileBytes(): number {
    const stats = this.#root.getStats() as { lastPageNumber: number; pageSize: number };
    return (stats.lastPageNumber + 1) * stats.pageSize;
  }

  /** Closes the buffer; a writable one is synced to disk first and marked as stopped cleanly. */
  async close(): Promise<void> {
    clearInterval(this.#syncTimer);
    if (this.#writable) await new Promise<void>((resolve) => syncToDisk(this.#root, () => resolve()));
    await this.#root.close();
    if (this.#writable) markStopped(this.#dataDir);
    this.#lock?.release();
  }

  #releasingLockOnError<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      this.#lock?.release();
      throw err;
    }
  }

  /**
   * Refuses a buffer in another layout (never misreads it): a buffer with events but no format
   * was written by an older contrail. An empty one is stamped with the current format.
   */
  #checkFormat(dataDir: string): void {
    const format = this.#meta.get(META_FORMAT) as number | undefined;
    if (format === FORMAT) return;
    const hasEvents = this.#oldestKey() !== undefined || this.#meta.get(META_CURSOR) !== undefined;
    if (format === undefined && !hasEvents) {
      if (this.#writable) this.#meta.putSync(META_FORMAT, FORMAT);
      return;
    }
    const writer = format === undefined ? 'an older contrail (store format 1, events without seq)' : `a contrail with store format ${format}`;
    throw new Error(
      `the event buffer in ${dataDir} was written by ${writer}; this contrail reads format ${FORMAT} and will not misread it. ` +
        'Move that folder aside (or pass another --data-dir) to start a new buffer; the old one stays readable by the contrail that wrote it',
    );
  }

  #oldestKey(): number | undefined {
    for (const key of this.#events.getKeys({ limit: 1 })) return key;
    return undefined;
  }

  #newestKey(): number | undefined {
    for (const key of this.#events.getKeys({ limit: 1, reverse: true })) return key;
    return undefined;
  }

  #registerSpanGauges(registry: Registry): void {
    const store = this;
    const registers = [registry];
    // Base units (seconds), and NaN while the buffer is empty: there is no such event, and 0 would
    // read as 1970 (a buffer 56 years deep).
    const seconds = (timeUs: number | undefined) => (timeUs === undefined ? NaN : timeUs / 1e6);
    new Gauge({
      name: 'contrail_store_oldest_event_timestamp_seconds',
      help: 'Unix time of the oldest buffered event (its time_us in seconds); NaN while the buffer is empty',
      registers,
      collect() {
        this.set(seconds(store.#oldestKey()));
      },
    });
    new Gauge({
      name: 'contrail_store_newest_event_timestamp_seconds',
      help: 'Unix time of the newest buffered event (its time_us in seconds); NaN while the buffer is empty',
      registers,
      collect() {
        this.set(seconds(store.#newestKey()));
      },
    });
    new Gauge({
      // Not contrail_store_events: OpenMetrics names the counter contrail_store_events_total that.
      name: 'contrail_store_buffered_events',
      help: 'Events in the buffer',
      registers,
      collect() {
        this.set(store.span().eventCount);
      },
    });
    new Gauge({
      name: 'contrail_store_bytes',
      help: 'Bytes of LMDB pages the buffered events occupy',
      registers,
      collect() {
        this.set(store.span().bytes);
      },
    });
    new Gauge({
      name: 'contrail_hot_log_bytes',
      help: 'Bytes of event JSON held in the in-memory hot log',
      registers,
      collect() {
        this.set(store.hotLog.bytes);
      },
    });
  }
}

/** LMDB's meta page starts with this magic; opening anything else can crash the process natively. */
const LMDB_MAGIC = 0xbeefc0de;

function assertLmdbFile(path: string): void {
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

/** mdb_env_sync, which lmdb-js has but does not declare in its typings. */
function syncToDisk(root: RootDatabase, done: (error?: Error) => void): void {
  (root as unknown as { sync(callback: (error?: Error) => void): void }).sync(done);
}
