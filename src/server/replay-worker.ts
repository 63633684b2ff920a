/**
 * A replay worker thread: reads the buffer for the main thread's ReplayPool. It opens the same
 * LMDB environment (never writing), and for each request reads the events after a position that
 * the subscriber's filter sends, in a fresh snapshot, then answers with them as stored records
 * and — for a zstd subscriber — their frames, both in buffers it transfers. It holds no
 * subscriber state: a request carries the filter (kept here by its JSON), the wire and the
 * EventStore's index state. On Linux it runs at nice 19: it reads on CPU the main thread leaves
 * (the test harness keeps it at the process's priority: ReplayWorkerData.lowerPriority).
 */
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { Entry } from '../events/index.ts';
import { DamagedBlockError, encodeRecords, SnapshotReader, UnreadableBufferError, type SnapshotRead } from '../store/index.reads.ts';
import { lowerThreadPriority } from '../threads/index.ts';
import { EventCompressor } from './compression.ts';
import { sendsEvent, type SubscriberFilter } from './filter.ts';
import type { FilterSpec, ReaderDoneMessage, ReplayFailure, ReplayFailureKind, ReplayReply, ReplayRequest, ReplayWorkerData } from './replay-pool.ts';
import { ndjsonWire, sseWire, v1Wire, v2Wire, type Wire } from './wire.ts';

/** Filters rebuilt from their JSON, most recently used last. */
const FILTERS_KEPT = 256;

const data = workerData as ReplayWorkerData;
// Where this thread and the main thread (ingest, live sends) want the same core, the scheduler runs the main thread.
if (data.lowerPriority) lowerThreadPriority();
const reader = new SnapshotReader(data.location, data.blockCacheBytes);
const compressor = new EventCompressor(Buffer.from(data.dictionary), data.level, data.replayLevel);
const wires: Record<string, Wire> = {
  v1: v1Wire(compressor, false),
  'v1+zstd': v1Wire(compressor, true),
  v2: v2Wire(compressor, false),
  'v2+zstd': v2Wire(compressor, true),
  sse: sseWire(),
  ndjson: ndjsonWire(),
};
const filters = new Map<string, SubscriberFilter>();

function filterFor(json: string, wire: Wire): SubscriberFilter {
  const key = `${wire.name}\n${json}`;
  let filter = filters.get(key);
  if (filter) {
    filters.delete(key);
  } else {
    const spec = JSON.parse(json) as FilterSpec;
    filter = {
      dids: new Set(spec.dids),
      collections: new Set(spec.collections),
      prefixes: spec.prefixes,
      kinds: new Set(spec.kinds),
      maxMessageBytes: spec.maxMessageBytes,
      frameBytes: wire.frameBytes,
    };
    if (filters.size >= FILTERS_KEPT) filters.delete(filters.keys().next().value!);
  }
  filters.set(key, filter);
  return filter;
}

function framesOf(entries: readonly Entry[], wire: Wire): { bytes: ArrayBuffer; ends: Uint32Array } {
  const frameOf = wire.replayFrame ?? wire.frame;
  const frames = entries.map((entry) => frameOf(entry));
  const ends = new Uint32Array(frames.length);
  let total = 0;
  frames.forEach((frame, i) => (ends[i] = total += frame.byteLength));
  const bytes = new Uint8Array(total);
  frames.forEach((frame, i) => bytes.set(frame, i === 0 ? 0 : ends[i - 1]));
  return { bytes: bytes.buffer, ends };
}

function answer(request: ReplayRequest): ReplayReply | ReplayFailure {
  const wire = wires[request.wire.zstd ? `${request.wire.name}+zstd` : request.wire.name];
  if (!wire) throw new Error(`no wire ${request.wire.name}`);
  const filter = filterFor(request.filter, wire);
  let tooLarge = 0;
  let read: SnapshotRead;
  try {
    read = reader.read(request.position, request.end, {
      ...request.limits,
      filter: (entry) => sendsEvent(filter, entry, () => tooLarge++),
      select: filter,
      reader: request.reader,
      sealedEvents: request.sealedEvents,
      didIndexUsable: request.didIndexUsable,
      fromOldest: request.fromOldest,
    });
  } catch (err) {
    // What the read found its way around before it failed is damage to say, whatever failed it.
    return failureOf(request.id, err, reader.refusedByLastRead);
  }
  try {
    if (read.trimmed) return { id: request.id, trimmed: true, ...(read.refused ? { refused: read.refused } : {}) };
    const records = encodeRecords(read.entries, Buffer.allocUnsafeSlow);
    const frames = wire.zstd ? framesOf(read.entries, wire) : undefined;
    return {
      id: request.id,
      position: read.position,
      records: records.buffer as ArrayBuffer,
      ...(frames ? { frames } : {}),
      tooLarge,
      ...(read.inconsistency ? { inconsistency: read.inconsistency, indexRebuilds: read.indexRebuilds } : {}),
      ...(read.fromOldest ? { fromOldest: read.fromOldest } : {}),
      ...(read.refused ? { refused: read.refused } : {}),
      partitionsRead: reader.partitionsRead,
    };
  } catch (err) {
    return failureOf(request.id, err, read.refused);
  } finally {
    // Records and frames are copies: the memory the read's entries are views of may be reused
    // from here on, however the answer went (a lease never released only forgoes the reuse).
    reader.release(read);
  }
}

/**
 * What the main thread is told of a read that failed: damage only where the store's read says so
 * (SnapshotReader.read: a damaged block, or an UnreadableBufferError, told with LMDB's or the
 * check's own reason); anything else — its snapshot behind the request, a fault in this thread's
 * code outside the store's read — is a fault, its error's name kept with its message. `refused`:
 * a page the read found its way around before the failure (SnapshotRead.refused).
 */
function failureOf(id: number, err: unknown, refused?: string): ReplayFailure {
  return { id, ...failureKindOf(err), ...(refused ? { refused } : {}) };
}

function failureKindOf(err: unknown): { error: string; kind: ReplayFailureKind } {
  if (err instanceof DamagedBlockError) return { error: err.message, kind: 'damagedBlock' };
  if (err instanceof UnreadableBufferError) return { error: err.cause instanceof Error ? err.cause.message : String(err.cause), kind: 'unreadable' };
  return { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err), kind: 'fault' };
}

const port = parentPort!;
port.on('message', (request: ReplayRequest | ReaderDoneMessage) => {
  if ('readerDone' in request) {
    reader.readerDone(request.readerDone);
    return;
  }
  let reply: ReplayReply | ReplayFailure;
  try {
    reply = answer(request);
  } catch (err) {
    // Failed before its read (no such wire, a filter that does not parse).
    reply = failureOf(request.id, err);
  }
  const transfer = 'records' in reply ? [reply.records, ...(reply.frames ? [reply.frames.bytes, reply.frames.ends.buffer as ArrayBuffer] : [])] : [];
  port.postMessage(reply, transfer);
});
port.postMessage({ id: -1, ready: true, tid: ownThreadId() });

/** This thread's OS thread id (Linux: /proc/thread-self is `<pid>/task/<tid>`), for reading its own CPU time; undefined elsewhere. */
function ownThreadId(): number | undefined {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').at(-1));
  } catch {
    return undefined;
  }
}
