/**
 * Retention's pass fails while the block directory cannot be read (a page damaged on disk under a
 * running contrail), and is tried again every interval and after every commit past the size bound
 * (about twice a second on the live network). Each failed pass logged an error line, a flood
 * saying the same thing; the store's reads say each reason once. Retention must too, and say when
 * a pass works again (once the page is mended), while every refused read stays counted
 * (contrail_store_unreadable_reads_total).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { createStoreMetrics, EventStore, Retention } from '../src/store/index.ts';
import { BLOCK, BUNDLED_DICTIONARY, writeBufferWithDirectory } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace, breakLeafPagesUntilMended } from './support/lmdb-pages.ts';
import { capturingLogger } from './support/upstream-harness.ts';

/**
 * Three blocks written and closed (writeBufferWithDirectory), then a store opened on them whose
 * log lines are kept in `lines`.
 */
async function storeOverBuffer(t: TestContext, prefix: string) {
  const defer = cleanup(t);
  const dir = tempDir(prefix);
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKey } = await writeBufferWithDirectory(dataDir, 3);
  const lines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];
  const logger = capturingLogger(lines, 'info');
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, logger });
  defer(() => store.close());
  return { dataDir, pageSize, directoryKey, lines, logger, store };
}

test('retention passes that fail on a directory page LMDB refuses say so once, each refused read counted', { timeout: 60_000 }, async (t) => {
  const { dataDir, pageSize, directoryKey, lines, logger, store } = await storeOverBuffer(t, 'contrail-retention-unreadable-');
  // Every event is older than the age bound: each pass reads the oldest block to remove it.
  const retention = new Retention({ store, maxAgeMs: 1, maxBytes: 1e12, logger, metrics: createStoreMetrics(new Registry()) });

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, directoryKey) > 0, 'a directory page is broken');
  const PASSES = 5;
  for (let i = 0; i < PASSES; i++) await retention.runOnce();
  const failed = lines.filter((l) => /retention pass failed/.test(l.msg));
  assert.equal(failed.length, 1, `one line for ${PASSES} failed passes: ${JSON.stringify(failed)}`);
  assert.match(String(failed[0]!.err), /MDB_[A-Z_]+/, "naming LMDB's reason");
  assert.equal(store.unreadableReads, PASSES, 'each refused read counted');
});

test('retention passes that work again once the directory page is mended say so once', { timeout: 60_000 }, async (t) => {
  const { dataDir, pageSize, directoryKey, lines, logger, store } = await storeOverBuffer(t, 'contrail-retention-mended-');
  // The age bound passes the first block, not the others: a pass that works removes it, and the next finds nothing to do.
  const firstBlockEnd = store.span().oldestTimeUs! + (BLOCK - 1) * 10;
  const retention = new Retention({ store, maxAgeMs: 1, now: () => (firstBlockEnd + 5) / 1000 + 1, maxBytes: 1e12, logger, metrics: createStoreMetrics(new Registry()) });
  const again = () => lines.filter((l) => /retention passes work again/.test(l.msg));

  const damage = breakLeafPagesUntilMended(dataDir, pageSize, directoryKey);
  for (let i = 0; i < 3; i++) await retention.runOnce();
  assert.equal(lines.filter((l) => /retention pass failed/.test(l.msg)).length, 1, 'the failed passes said once');
  assert.equal(again().length, 0, 'no pass worked yet');

  damage.mend();
  for (let i = 0; i < 3; i++) await retention.runOnce();
  assert.equal(again().length, 1, `the first pass that works says so, once: ${JSON.stringify(lines)}`);
  assert.equal(again()[0]!.level, 40, 'as a warning');
  assert.equal(store.span().oldestTimeUs, firstBlockEnd + 10, 'and it trimmed the first block');
});
