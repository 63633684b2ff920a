/**
 * A replay worker that meets a corrupt per-DID index entry reports it with the read's answer, and
 * then reads by scans until its snapshot counts a rebuild after the one it found it in. The answer
 * of a read asked for before the subscriber changed its filter, replayed from elsewhere or left
 * is dropped, but what it found about the index is the store's, whoever asked: dropped with it,
 * the EventStore never learns, the index is never rebuilt, and that worker scans every block for
 * DID replays until the gateway restarts while the main thread keeps reading the broken index.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { DEFAULT_DICTIONARY } from '../src/config.ts';
import { EventCompressor } from '../src/server/compression.ts';
import { parseFilter } from '../src/server/filter.ts';
import { ServerMetrics } from '../src/server/metrics.ts';
import { ReplayPool } from '../src/server/replay-pool.ts';
import { ReplayReads } from '../src/server/replay-reads.ts';
import { Subscriber } from '../src/server/subscriber.ts';
import type { SubscriberSink } from '../src/server/transport.ts';
import { v1Wire } from '../src/server/wire.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { corruptBuffer, target } from './support/corrupt-did-index.ts';
import { tempDir } from './support/gateway.ts';

test("a worker's read that met a corrupt index entry tells the store even when its answer is stale (the subscriber left meanwhile)", async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-stale-read-index-');
  defer(() => dir.remove());
  await corruptBuffer(dir.path);
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger: pino({ level: 'silent' }) });
  defer(() => store.close());
  const compressor = new EventCompressor(readFileSync(DEFAULT_DICTIONARY));
  const pool = new ReplayPool(1, { location: store.location, blockCacheBytes: store.blockCacheBytes, dictionary: compressor.dictionary, level: compressor.level, replayLevel: compressor.replayLevel, lowerPriority: false }, pino({ level: 'silent' }));
  defer(() => pool.close());
  await pool.ready();

  let woken!: () => void;
  const answered = new Promise<void>((resolve) => (woken = resolve));
  const reads = new ReplayReads(store, pool, () => woken(), () => {});
  const sink: SubscriberSink = { send: () => {}, bufferedAmount: () => 0, cork: (fn) => fn(), close: () => {}, terminate: () => {} };
  const filter = { ...parseFilter({ wantedDids: [target] }), frameBytes: () => 0 };
  const admission = { filter, wire: v1Wire(compressor, false), deflate: false, position: 0, requireHello: false, remoteAddress: '127.0.0.1' };
  const subscriber = new Subscriber(admission, sink, new ServerMetrics(new Registry(), () => []), 0);

  assert.equal(reads.next(subscriber), 'reading', 'a DID replay of the sealed blocks, read on the worker through the per-DID index');
  // The subscriber leaves before the answer comes back (the hub resets its reads, as it does on close).
  subscriber.mode = 'closed';
  reads.reset(subscriber);
  await answered;

  assert.equal(store.didIndex.inconsistencies, 1, 'the store was told of the corrupt entry the worker met');
  assert.notEqual(store.didIndex.state, 'ok', 'and stopped trusting the index (it rebuilds it)');
});
