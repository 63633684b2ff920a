/**
 * The store's read side alone, for a replay worker thread (server/replay-worker.ts): the
 * SnapshotReader, the errors its reads fail with and the record encoding its answers travel in. A worker that imported index.ts
 * loaded the whole stage and what it imports (ingest's upstream, identity and verify stages, ws,
 * @atcute/crypto, prom-client): most of the worker's start, every time one starts.
 */
export { SnapshotReader, type OldestHeld, type SnapshotRead, type SnapshotReadOptions } from './snapshot-reader.ts';
export { encodeRecords } from './codec.ts';
export { DamagedBlockError } from './blocks.ts';
export { UnreadableBufferError } from './read-errors.ts';
