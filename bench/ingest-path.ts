/**
 * The gateway's ingest path in this process, for benchmarks: decodeFrame, parseMessage and the
 * Ingester (events, revs, group commit) into `store`, as `contrail serve` runs it, with no socket,
 * no server and no stream; 64 frames per turn of the event loop, as a socket read hands them over.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CursorClock } from '../src/events/index.ts';
import { createStoreMetrics, EventStore, Ingester } from '../src/store/index.ts';
import { createUpstreamMetrics, decodeFrame, DropReporter, parseMessage } from '../src/upstream/index.ts';
import { tempDir } from '../test/support/gateway.ts';
import { timeEvents, type TimedRun } from './table.ts';

/** Frames a socket read hands over at once (64 KiB of ~1 KB frames). */
const FRAMES_PER_READ = 64;

/**
 * The frames' events through the ingest path into a fresh buffer (no fsync) in a temp dir,
 * removed afterwards; only feeding the frames and the last commit are timed.
 */
export async function ingestIntoFreshBuffer(frames: readonly Uint8Array[], options: { hotLogBytes: number; dictionary?: Buffer }): Promise<TimedRun> {
  const dir = tempDir('contrail-bench-ingest-');
  const store = new EventStore({ dataDir: dir.path, ...options, fsync: false });
  try {
    return await timeEvents(async () => {
      await ingestInProcess(store, frames);
      return store.span().eventCount;
    });
  } finally {
    await store.close();
    dir.remove();
  }
}

/** Resolves once every frame's events are committed to the store. */
async function ingestInProcess(store: EventStore, frames: readonly Uint8Array[]): Promise<void> {
  const registry = new Registry();
  const logger = pino({ level: 'silent' });
  const ingester = new Ingester({
    store,
    clock: new CursorClock(store.lastTimeUs),
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
