/**
 * The gateway's ingest path in this process, for benchmarks: decodeFrame, parseMessage and the
 * Ingester (events, revs, group commit) into `store`, as `contrail serve` runs it, with no socket,
 * no server and no stream; 64 frames per turn of the event loop, as a socket read hands them over.
 */
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CursorClock, type Entry } from '../src/events/index.ts';
import { createStoreMetrics, EventStore, Ingester } from '../src/store/index.ts';
import { createUpstreamMetrics, decodeFrame, DropReporter, parseMessage } from '../src/upstream/index.ts';
import { tempDir } from '../test/support/gateway.ts';
import { timeEvents, type TimedRun } from './table.ts';

/** Frames a socket read hands over at once (64 KiB of ~1 KB frames). */
const FRAMES_PER_READ = 64;
/**
 * The clock's reading for every event (2025-11-26 in µs, as many digits as the network's): each
 * event takes the one before's time_us + 1, so every run writes the same bytes and the digest
 * compares code versions.
 */
const FIXED_NOW_US = 1_764_115_200_000_000;

/** A timed run of the whole path, with the SHA-256 of every event's JSON in commit order (hex). */
export interface IngestRun extends TimedRun {
  sha256: string;
}

/**
 * The frames' events through the ingest path into a fresh buffer (no fsync) in a temp dir,
 * removed afterwards. Timed: feeding the frames, the commits and closing the store, which seals
 * the blocks still in progress (sealing runs in steps after commits: work left for close is work
 * the path does). The digest is taken after the timing.
 */
export async function ingestIntoFreshBuffer(frames: readonly Uint8Array[], options: { hotLogBytes: number; dictionary?: Buffer }): Promise<IngestRun> {
  const dir = tempDir('contrail-bench-ingest-');
  const store = new EventStore({ dataDir: dir.path, ...options, fsync: false });
  const committed: Entry[] = [];
  store.onCommitted((entries) => {
    for (const entry of entries) committed.push(entry);
  });
  let closed = false;
  try {
    const run = await timeEvents(async () => {
      await ingestInProcess(store, frames);
      const events = store.span().eventCount;
      closed = true;
      await store.close();
      return events;
    });
    const digest = createHash('sha256');
    for (const entry of committed) digest.update(entry.json);
    return { ...run, sha256: digest.digest('hex') };
  } finally {
    if (!closed) await store.close();
    dir.remove();
  }
}

/** Resolves once every frame's events are committed to the store. */
async function ingestInProcess(store: EventStore, frames: readonly Uint8Array[]): Promise<void> {
  const registry = new Registry();
  const logger = pino({ level: 'silent' });
  const ingester = new Ingester({
    store,
    clock: new CursorClock(store.lastTimeUs, () => FIXED_NOW_US),
    upstreamUrl: 'ws://relay.invalid',
    logger,
    metrics: createStoreMetrics(registry),
    drops: new DropReporter(createUpstreamMetrics(registry).drops, logger),
    onBackpressure: () => {},
  });
  for (let at = 0; at < frames.length; at += FRAMES_PER_READ) {
    for (let i = at; i < Math.min(at + FRAMES_PER_READ, frames.length); i++) ingester.handle(parseMessage(decodeFrame(frames[i]!, Infinity)));
    await new Promise(setImmediate);
  }
  await ingester.flush();
}
