/**
 * Package store is the replay buffer: every event, durable in LMDB, compressed, indexed by DID
 * and collection, ordered by its time_us.
 *
 * How it works: one LMDB environment in the data dir holds `tail` (the events committed but not
 * yet sealed, uncompressed (codec.ts), in runs of up to 32 KiB keyed by each run's newest
 * time_us: a commit is one put or a few, not one per event; each run with the CRC-32 of its
 * records, tail-runs.ts), `blocks` ([block end, partition] →
 * one zstd frame), `directory` (block end → its first time_us, seqs, dictionary and partitions),
 * `blockSeqs` (a block's last seq → its end), `byDid` (the per-DID index: DID hash → the
 * DID's events as sorted fixed-size postings, time_us and partition; did-keys.ts),
 * `partitions` (collection → partition number), `dictionaries`, `revs` (DID → last stored commit
 * rev) and `meta` (format version, upstream cursor, last issued time_us and seq, retention floor,
 * the per-DID index's inconsistency mark, count of rebuilds and the blocks it has no entries for,
 * and the seq and time_us floors: the
 * ceilings a torn buffer set aside in this one's place had given out seqs and time_us up to, see
 * run-marker.ts; the clock that stamps this buffer's events starts above timeUsFloor; and the
 * events lost in tail runs a start found damaged, or in blocks whose directory entry did not decode).
 * The environment's map is reserved up front at twice `--max-buffer-bytes` (address space, not
 * memory or disk): lmdb-js grows a full map by mapping the file again and keeps every old map, so
 * a buffer left to grow from lmdb-js's 128 KiB default was mapped once per doubling, each map
 * keeping resident what it had touched (environment.ts, mapSizeFor).
 * The Ingester is the only writer: it groups whatever frames arrived while the previous commit
 * was in flight into one transaction (events into the tail, the revs, the upstream seq and the
 * last time_us and seq); catching up (a turn's reads bring 32 events or more, the commit before
 * it as many), the reads of up to three more such turns join it, while a live turn's few events,
 * and the first such burst after them (one stall of the thread brings as many), commit in the
 * turn they were read. So the saved cursor never runs ahead of the events it covers, and after a crash the
 * reader resumes from it and the clock from above the newest stored event. While --verify holds
 * repos back, the cursor stays below them and carries the held window (how far ingest read, and
 * each held repo's lowest seq), so a restart stores only what it had not. The window rides every
 * commit (and each cluster batch's last stream message), so it is capped at 256 repos: past that
 * only the resume seq is saved, and a restart stores again the #identity/#account events it reads
 * twice (commits are kept out by their revs) — a rare duplicate, where 10,000 repos cost ~420 KB
 * and ~6 ms of CPU per commit (bench/held-cursor.ts). Keeping the window apart, written when the
 * held set changes, would not help: while many repos are held (a cold identity cache) it changes
 * with nearly every commit, and a cluster's next leader needs it with the cursor. A frame at or below
 * the newest seq read is dropped as already stored (a run of them that lasts is reported by the
 * upstream stage, SeqsBehind, which sees every frame read): which seqs are right is not for it to guess. Every 1,024 tail
 * events are sealed into a block, in steps on the turns of the event loop after the commit (a
 * turn whose reads brought events commits them first, and the step waits for the next turn), so
 * no seal is one long task for the thread that commits and sends live events (it was
 * the main thread's longest, 15–30 ms of CPU at a few hundred thousand events): ~1 ms of steps
 * per turn (a partition compressed per step — most take microseconds — the block's per-DID
 * postings in key order, 64 per transaction), and last, in a turn of its own, one transaction
 * with its frames and directory entries and the tail runs it covers whole removed (a run covered
 * in part stays until the next seal, its sealed events skipped by readers). Until that last step
 * readers read the events from the tail; the postings, above every reader's newest block, are
 * never read, and after a crash in between sealing the events again writes the same postings.
 * A tail of ten full blocks (a catch-up burst, or a loop of commits that never yields a turn) is
 * sealed at once, eight blocks together: their postings in one key-ordered pass, so postings of
 * different blocks on the same B-tree page share its copy (~1.4× the events per CPU-second of a
 * block at a time). Full blocks are sealed at once too when retention would trim the tail (unless
 * sealing is failing, a full disk: then the seal waits for the next commit and the tail is trimmed), at
 * close() and on reopening.
 *
 * Why blocks, split by collection (measured: see dictionaries.ts and the README's Design): zstd
 * with our dictionary gives ~178 B/event one event at a time and ~136 B/event in blocks of
 * 1,024; a block keeps one frame per collection (partition 0: identity, account and sync
 * events), so the partitions are the per-collection index — a collection filter decompresses
 * only its own frames — and a DID lookup decompresses one frame and decodes only its event. The blocks' frames are not what a
 * compressed client gets (that is one standalone frame per event), so compressed replays from
 * disk compress each event again; JSON readers get the stored bytes as they were written.
 *
 * The dictionary is recorded with what it compressed: each block names the store-local number
 * of its dictionary, and the buffer keeps every dictionary it used (dictionaries.ts), so changing
 * `--zstd-dictionary` never makes old blocks unreadable; a start with another dictionary than the
 * newest blocks' logs a warning naming both. A buffer in another layout (no format,
 * or another format number) is refused with the reason, never misread. A block frame that fails
 * zstd's checksum (its bytes changed on disk; LMDB keeps no checksums) is a DamagedBlockError
 * naming the block's events, logged once per block; a read never skips it: one that reaches it
 * having read past its position ends before it with what it took, and the next read throws.
 * The tail, uncompressed, has no zstd checksum: each run carries the CRC-32 of its records
 * (tail-runs.ts; measured on bench/ingest's whole path: see the README's Design). A start that
 * reads a run failing it, or keyed otherwise than by its newest event's time_us (the key, which
 * readers seek runs by, is not under the CRC: a replay worker passed over a run keyed below its
 * events), keeps its events out of the tail and names them (from after the run before it to its
 * newest event, or for a run that fails its CRC to its key) in `meta` until retention passes them: every read, on any thread and
 * after the events around them are sealed, stops before them and the next one throws a
 * DamagedBlockError naming them, as for a damaged block. A writable start also writes the tail
 * table again without such runs, in the transaction that names their events: a key changed in
 * place to above the next run's leaves the run out of order in its LMDB page, where a replay
 * worker's seek for the runs after it stopped at it and skipped theirs. A replay worker that finds a run
 * damaged since the start fails its read, which the main thread reads from the events it holds; a
 * worker's read that fails so, or that LMDB refuses (not on a damaged block, which the main thread's
 * read says), is counted and said once per reason, its numbers aside, by the store (workerReadFailed),
 * however the main thread's read goes: SnapshotReader.read throws such a failure as an
 * UnreadableBufferError, a snapshot older than the request as a SnapshotBehindError, which is no damage.
 * A worker finds where the sealed blocks end (the directory's newest key, which the EventStore keeps
 * in memory) in `blockSeqs` where LMDB refuses the directory's last page, and says so with its read,
 * a `trimmed` answer too, and a read that then fails (SnapshotReader.refusedByLastRead): its reads of
 * blocks on sound pages are served, not every one read again on the main thread.
 * A block's directory entry (msgpack, no checksum either) that no longer decodes leaves the block
 * unreadable (which partitions, which dictionary): a start names its events lost the same way,
 * from after the block before it to its end, and a writable one removes the block (its frames
 * and seq entry) so that retention, seq lookups and rebuilds never meet the entry; a store's
 * start used to throw on it, and `contrail serve` and `inspect` exited naming nothing. So does a
 * directory key (outside the entry) changed in place to out of its page's order, where lookups by
 * key miss (the sound keys' too: the start reads the entries in one walk): a key out of order with
 * a neighbour is checked against its frames' end (the first after the block before it), and one
 * that is not it has its events named lost up to that end; a writable start writes the directory
 * again without it.
 * What cannot be rebuilt from the events — `meta`, `partitions`, `dictionaries` — is read at the
 * start with each value's kind checked (stored-state.ts; partition numbers, given in order and
 * never taken back, must be 1 to the count of collections), and each dictionary against its
 * SHA-256: a value that does not decode or is not what its key holds refuses the buffer, naming
 * the table and the key, closed again with the data dir's lock released (it threw msgpack's error,
 * naming nothing, or started from a garbled seq, time_us or partition number). Not the per-DID
 * index's own values (its mark, rebuild count and gaps): the index gives them back, so one damaged
 * is said at error level, the index bypassed and, in a writable store, rebuilt, which writes them again.
 * Any other read that fails (LMDB refuses a page damaged on disk: MDB_CORRUPTED, MDB_PAGE_NOTFOUND)
 * throws an UnreadableBufferError naming the position it read after (read-errors.ts), logged
 * once per reason, its numbers aside (ReasonsSaid); so do the directory's reads outside a replay's (oldest(), and retention's
 * look at the oldest block, which fails its pass: said once per reason until a pass works again),
 * for a page that goes bad while serving.
 * Each such read is counted (unreadableReads, for the metrics), an index rebuild's too (which
 * fails the rebuild, leaving the index bypassed), and ingest's of a repo's rev (getRev: one that
 * cannot be read skips nothing, and the commit's own write of it fails, retried); the span's readers outside a
 * replay (/stats, the status line, the gauges) show what can still be read without the oldest.
 * Retention's check of the size bound, run as each commit is announced, reads no table
 * (size(): LMDB's table stats): thrown out of the commit, an error made it look failed, and
 * ingest wrote the batch again. LMDB marks the read transaction it failed in, and lmdb-js would reuse it for
 * the next read (a cursor the failed read left open holds it) until a commit: the store commits a
 * write of its format number at once, so the next read, in the same turn, gets a sound one. Not
 * where LMDB failed nothing (a frame that fails zstd's checksum, events lost in a tail run): every
 * replay that reaches such a block would cost a write (an fsync under --fsync).
 *
 * The seq contract (what other stages may rely on): every stored event has a `seq` — unique,
 * strictly increasing in time_us order, never reused, also across restarts and after retention
 * removed everything (the last one is saved with each commit) — stored with the event and
 * resolvable to its time_us in O(log n) (`atSeq`: one seek in `blockSeqs`, at most one
 * block decompressed). `commit` assigns the next seqs; `commitAssigned` writes events whose
 * time_us and seq were assigned elsewhere (a replication leader), as given, after checking that
 * both still increase.
 *
 * Visible only after durable: committed batches are appended to the HotLog and announced to
 * listeners only once LMDB has committed them. A commit survives a killed process (it is in the
 * OS page cache); fsync is off by default — the buffer is synced every second in the background,
 * and run-marker.ts sets aside a buffer a machine crash may have torn — and `--fsync` flushes
 * every commit as it happens instead (see the README's Design section). Readers ask for "events
 * after my position that pass my filter", optionally with a Selection (the filter's DIDs,
 * collections and prefixes):
 * sealed blocks first — through the per-DID index when the DIDs' entries are few (counted, up
 * to 1/64 of the events; a scan decompresses each event once, an index hit one partition), else
 * only the wanted partitions, else everything (sealed-reads.ts) — then the tail, then the hot
 * log. A whole block's partitions are decompressed into reused 1 MiB slabs (slabs.ts): a read
 * pins the slabs its entries' JSON are views of until its caller releases it (EventStore.release;
 * a read never released is left to the garbage collector), since a fresh buffer per partition made
 * a full replay mostly garbage collection. Partitions read alone are cached by bytes, each in its
 * own buffer, and shared by all readers; a whole block's merge is kept while a replay that named
 * itself (ReadOptions.reader) has yet to read past it, at most 32, past that the ones nearest
 * the trailing replay (blocks.ts); a partition decodes into entries
 * whose DID and collection become strings only when a filter reads them (codec.ts). An
 * index entry that contradicts its block — it names no event of the partition it gives, or an
 * event whose DID does not have the entry's hash (each event read through the index is checked:
 * a flipped bit in a time_us can name another repo's event) — is logged once as an error, the
 * read that met it starts over by scanning (the event the entry should have named may come
 * before others it had read), and the index is bypassed (scans: slower DID replays, never short
 * ones) while a writable store rebuilds it in the background (a read-only one leaves it to the
 * next writable start). Found inconsistent again after 3 rebuilds within 24 h (a bug, a failing
 * disk), it is abandoned instead: DID replays scan until the next start, which rebuilds it once
 * more, and one error line says so; rebuilt every time, an index that keeps breaking would be
 * rewritten whole again and again (minutes at millions of events) while replays scan anyway.
 * The rebuild (EventStore#rebuildStep) runs in the seal's steps, in turns no seal step needs,
 * giving way to a commit due in the same turn, ~1 ms a turn: it clears the index (128 DIDs a step), and the blocks there are then get their postings again, oldest first, eight blocks'
 * worth in key order; blocks sealed later write their own (its steps run in turns with no seal
 * in progress, so no seal has postings the clear takes), a block retention removed is skipped
 * and no posting at or below trimmedUpTo is written. A block damaged on disk gets the postings of
 * the partitions that can be read, and is kept (in the last step's transaction) as a gap in the
 * index, its time_us range logged once (a frame LMDB cannot find, MDB_PAGE_NOTFOUND, fails the read
 * transaction: it is renewed, else every block read after it in it failed with MDB_BAD_TXN too): DID-filtered reads read that block itself, as a scan does,
 * so they end at its damage with a DamagedBlockError as an unfiltered read does, never passing
 * over the events it holds (the rebuild used to fail there, leaving DID replays to scan every
 * block until retention removed it). The buffer stays marked inconsistent until the last step, so a
 * start before it begins again; a replay worker's snapshot sees the mark too, so a read asked
 * for before the inconsistency was found never takes a half-built index for a whole one. The
 * last step also counts the rebuild, in the mark's transaction: a worker that found the index
 * inconsistent scans until its snapshot counts a rebuild after the one it found it in, whether or
 * not any of its reads fell inside the rebuild; and its report, reaching the EventStore after such
 * a rebuild ended, starts no other (it carries that count, judged against the one the store
 * wrote and keeps: no read, which a damaged meta page would fail). A mark the store cannot write
 * (LMDB refuses the meta page) leaves the index bypassed, not rebuilt, logged and counted as a
 * refused write of the mark (didIndexMarkWriteFailures), not among the reads LMDB refused. Why not
 * at the start, as before: that held the gateway's start for the whole rebuild, 45 s for 2 M
 * events and 293 s for 5 M (the README's Performance section), some 20 minutes for a day's 20 M. What no read can make good: a wrong entry found only after a replay's earlier
 * reads had passed the event it hid (the client already has later events); the error line dates
 * it. Index entries only narrow what is read, the exact filter decides.
 *
 * Reads off the main thread: a replay worker thread (the server's, where it has any: none by
 * default on two cores or fewer, see the server's design note) opens the same environment
 * from the store's `location` (lmdb-js shares one environment per path within a process and
 * refuses a second opening with other flags) and reads sealed blocks and the tail with a
 * SnapshotReader (snapshot-reader.ts): the same SealedReader and BlockReader (with its own
 * cache), in a read transaction reset before each read — lmdb-js would otherwise renew it only
 * on a later turn of the event loop, and a read could miss the newest commits. The snapshot's
 * trimmedUpTo says when retention passed the reader's position (a reader that asked for whatever is
 * oldest, `fromOldest`, starts at the snapshot's oldest event instead); the EventStore's sealed count and
 * index state come with each read, and an index inconsistency found there is reported back. A
 * worker cannot commit to renew a read transaction LMDB failed, as the EventStore does: its ranges
 * close their cursors when a page is refused mid-walk (closedOnError; lmdb-js leaves them open,
 * holding the failed transaction, into which it renews), so a failed read fails alone; the count of
 * a DID's postings that plans a filtered read (getValuesCount, which cannot be so wrapped) is made
 * only after a closable range has reached the DID's key. Both are the tables' own: SealedReader and
 * SnapshotReader are given their tables as ClosingRanges (closingRanges), which have no other reads. Both threads read the per-DID index's
 * mark, rebuild count and gaps through readDidIndexMeta: a damaged one bypasses the index, each read apart.
 *
 * Retention (retention.ts) removes whole blocks (and their index entries) in one transaction
 * each, the age bound every interval and the size bound after every commit too; the size bound
 * never removes the newest event. A damaged block is removed like any other, logged once; the
 * index entries of its partitions that cannot be read stay, at or below trimmedUpTo where no
 * read looks, so the index is not marked inconsistent (a rebuild would clear them). `trimmedUpTo` remembers where, so a reader whose position
 * falls below it knows it has lost events.
 *
 * Files:
 *   event-store.ts   EventStore: the LMDB environment, commits, sealing, readAfter, span and size, trimming
 *   blocks.ts        blocks: building them, reading and caching their partitions
 *   slabs.ts         SlabPool, Lease: reused memory for decompressed partitions, pinned while read
 *   sealed-reads.ts  reads of sealed blocks: by the DID index, by partition, or everything
 *   disk-reads.ts    readStored: sealed blocks then the tail, for a read's bounds (collect, into the caller's array if it hands one: ReadOptions.into); ReadLeases
 *   read-errors.ts   UnreadableBufferError: a read that failed for another reason than a damaged block; orUnreadable, oldestOrUnreadable: it as a value; ReasonsSaid: reasons said once each, their numbers aside (every log-once of a failure: the store's reads, the workers', retention's passes); closingRanges, closedOnError
 *   tail-runs.ts     a tail run's stored form and its CRC-32; the events lost in damaged runs, which readers stop before
 *   stored-state.ts  META (the meta table's keys), readMeta, readPartitions, readDidIndexMeta: the state the events cannot give back, each value's kind checked (DamagedStateError)
 *   snapshot-reader.ts SnapshotReader: the same reads from another thread, in a fresh snapshot; SnapshotBehindError: a snapshot older than the request (no damage)
 *   index.reads.ts   the read side alone (SnapshotReader, encodeRecords): the entry point of a replay worker, which must not load the whole stage
 *   environment.ts   the LMDB environment's options and tables, opened alike by every thread
 *   did-keys.ts      the per-DID index's keys
 *   dictionaries.ts  the zstd dictionaries the buffer's blocks were compressed with
 *   codec.ts         the stored-event layout: key fields, metadata for filters, the event's JSON
 *   hot-log.ts       HotLog: the newest committed events in memory, bounded by bytes
 *   ingest.ts        Ingester: the single writer (dedup by seq and rev, group commit, backpressure)
 *   ingest-filter.ts collectionKeeper: --ingest-collections, the commit ops a small instance keeps
 *   retention.ts     Retention: trims by age and size; says how many hours the size bound holds, and if the disk has less room
 *   run-marker.ts    Run: the marker that tells a killed process from a machine crash, and holds the seq and time_us ceilings; the background sync without fsync
 *   lmdb-file.ts     assertLmdbFile: refuses a data file that is not LMDB's, or is cut short, before LMDB opens it
 *   data-dir-lock.ts lockDataDir: one gateway per data dir
 *   free-space.ts    assertFreeSpace: refuses to start on a full disk
 *   data-dir-watch.ts DataDirWatch: notices the data dir deleted (or made again) under a running gateway
 *   metrics.ts       the store and ingest Prometheus metrics, and the buffer's gauges (and its reads LMDB refused)
 */
export { EventStore, type Batch, type EventStoreOptions, type StoreSpan, type UpstreamCursor } from './event-store.ts';
export type { EventFilter, ReadOptions, ReadResult } from './disk-reads.ts';
export type { Selection } from './sealed-reads.ts';
export { DamagedBlockError } from './blocks.ts';
export { oldestOrUnreadable, orUnreadable, ReasonsSaid, UnreadableBufferError } from './read-errors.ts';
export { mapSizeFor, type BufferLocation } from './environment.ts';
export * from './index.reads.ts';
export { decodeRecords } from './codec.ts';
export { Ingester, type IngesterOptions } from './ingest.ts';
export { collectionKeeper } from './ingest-filter.ts';
export { Retention, type RetentionOptions } from './retention.ts';
export { DataDirWatch } from './data-dir-watch.ts';
export { createStoreMetrics, registerBufferGauges, type StoreMetrics } from './metrics.ts';
