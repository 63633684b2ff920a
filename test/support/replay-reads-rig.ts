/**
 * What the hub's replay step drives, without the hub: a ReplayPool of one real worker thread on a
 * store's buffer, the ReplayReads over it, and subscribers of every event, for tests of how a
 * worker's reads and their failures reach the main thread.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { DEFAULT_DICTIONARY } from '../../src/config.ts';
import { EventCompressor } from '../../src/server/compression.ts';
import { parseFilter } from '../../src/server/filter.ts';
import { ServerMetrics } from '../../src/server/metrics.ts';
import { ReplayPool } from '../../src/server/replay-pool.ts';
import { ReplayReads, type ReplayBatch } from '../../src/server/replay-reads.ts';
import { Subscriber } from '../../src/server/subscriber.ts';
import type { SubscriberSink } from '../../src/server/transport.ts';
import { v1Wire } from '../../src/server/wire.ts';
import type { BufferLocation, EventStore } from '../../src/store/index.ts';
import type { cleanup } from './cleanup.ts';

/** `location`: the buffer the worker reads, the store's unless a test gives it another (an older copy of it). */
export async function replayReadsRig(defer: ReturnType<typeof cleanup>, store: EventStore, logger: Logger, location: BufferLocation = store.location) {
  const compressor = new EventCompressor(readFileSync(DEFAULT_DICTIONARY));
  const pool = new ReplayPool(1, { location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level, replayLevel: compressor.replayLevel, lowerPriority: false }, logger);
  defer(() => pool.close());
  await pool.ready();
  let woken = () => {};
  let readsAhead = 0;
  let tooLarge = 0;
  const reads = new ReplayReads(store, pool, () => woken(), (count) => (tooLarge += count), () => readsAhead++);
  /** Resolves at the next answer (or failure) of any subscriber's read. */
  const nextWake = () => new Promise<void>((resolve) => (woken = resolve));
  /**
   * What ReplayReads gives for the subscriber once the worker it asked has answered (or failed);
   * woken by another subscriber's read ahead, it waits on.
   */
  const answerTo = async (subscriber: Subscriber) => {
    assert.equal(reads.next(subscriber), 'reading', 'the read is asked of the worker');
    let next: ReturnType<ReplayReads['next']>;
    do {
      await nextWake();
      next = reads.next(subscriber);
    } while (next === 'reading');
    return next;
  };
  const sink: SubscriberSink = { send: () => {}, bufferedAmount: () => 0, cork: (fn) => fn(), close: () => {}, terminate: () => {} };
  return {
    pool,
    reads,
    nextWake,
    /** Reads asked for ahead so far (ReplayReads' countReadAhead). */
    readsAhead: () => readsAhead,
    /** Events skipped for their subscriber's max_message_size so far (ReplayReads' countTooLarge). */
    tooLarge: () => tooLarge,
    /**
     * A v1 subscriber of every event from `position` on; `zstd`: a compressed one, whose frames only
     * a worker makes; `fromOldest`: one following the oldest event (its cursor older than the buffer).
     */
    subscriberAt: (position: number, zstd = false, fromOldest = false) =>
      new Subscriber(
        { filter: { ...parseFilter({}), frameBytes: () => 0 }, wire: v1Wire(compressor, zstd), deflate: false, position, fromOldest, requireHello: false, remoteAddress: '127.0.0.1' },
        sink,
        new ServerMetrics(new Registry(), () => []),
        0,
      ),
    answerTo,
    /** The subscriber's next batch, asked of the worker: its answer, or the main thread's read if the worker's failed. */
    async nextBatch(subscriber: Subscriber): Promise<ReplayBatch> {
      const batch = await answerTo(subscriber);
      assert.ok(typeof batch === 'object' && 'entries' in batch, `a batch, not ${String(batch)}`);
      return batch;
    },
  };
}
