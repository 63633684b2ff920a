/**
 * A replay worker's read that LMDB refuses (a page damaged on disk) is read again on the main
 * thread (ReplayReads). Where the main thread does not meet the damage — here the tail's page,
 * which only a worker reads from LMDB, the main thread holding the tail in memory — its read
 * succeeds, and the worker's failure was neither logged nor counted: an operator never learned
 * of the damage, and every replay's batch there was read twice. The pool must tell a read that
 * failed in its worker from a worker that died, and the store must say such a read once per
 * reason and count each (contrail_store_worker_unreadable_reads_total).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { EventStore, registerBufferGauges } from '../src/store/index.ts';
import { BLOCK, BUNDLED_DICTIONARY, writeBufferWithTail } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { replayReadsRig } from './support/replay-reads-rig.ts';
import { texts } from './support/store-reads.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';

test("a replay worker's read that LMDB refuses, which the main thread then reads without fault, is said once per reason and each counted", { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-worker-read-counted-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { events, pageSize, tailKey } = await writeBufferWithTail(dataDir);

  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, logger });
  defer(() => store.close());
  const registry = new Registry();
  registerBufferGauges(registry, store);
  const { subscriberAt, nextBatch } = await replayReadsRig(defer, store, logger);
  const inTail = events[2 * BLOCK + 10]!.timeUs;
  const counted = async () => Number(/^contrail_store_worker_unreadable_reads_total (\S+)$/m.exec(await registry.metrics())?.[1]);
  const workerLines = () => lines.filter((line) => line.level >= 50 && /replay worker/.test(line.msg));

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, tailKey) > 0, "the tail's page is broken");
  const expected = texts(events.slice(2 * BLOCK + 11));
  assert.deepEqual(texts((await nextBatch(subscriberAt(inTail))).entries).slice(0, expected.length), expected, 'the main thread reads the batch from the tail it holds');
  assert.equal(workerLines().length, 1, `the worker's failed read is said: ${JSON.stringify(lines)}`);
  assert.match(String(workerLines()[0]!.err), /MDB_CORRUPTED/, "with LMDB's reason");
  assert.equal(await counted(), 1, 'and counted');

  assert.deepEqual(texts((await nextBatch(subscriberAt(inTail))).entries).slice(0, expected.length), expected, "another subscriber's batch, the same way");
  assert.equal(workerLines().length, 1, 'the same reason is said once');
  assert.equal(await counted(), 2, 'each failed read counted');
  assert.equal(lines.filter((line) => /replay worker stopped/.test(line.msg)).length, 0, 'the worker lived on: nothing said it died');
});
