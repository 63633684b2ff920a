/**
 * A replay worker that met a corrupt per-DID index entry reports it to the EventStore on the main
 * thread (ReplayReads, in the worker's answer's handler), with the index rebuilds its snapshot
 * counted. The store compared that count with the one in its `meta` table, read there and then:
 * a meta page LMDB refuses (damaged on disk while contrail serves) threw MDB_CORRUPTED out of the
 * answer's handler, an unhandled rejection that ends the process. The store keeps the count it
 * wrote instead, reading no page; and where the mark that the index is inconsistent cannot be
 * written either, the index is bypassed (DID replays scan, exact), the refusal logged and
 * counted (as a refused write of the mark, not among the reads LMDB refused), and no rebuild
 * started that could not record its end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { Registry } from 'prom-client';
import { EventStore, registerBufferGauges, SnapshotReader } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { corruptBuffer, stream, target } from './support/corrupt-did-index.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { readAll, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

test("a worker's report of an inconsistent per-DID index, made when a page of the buffer's meta cannot be read, bypasses the index, logged and counted, and throws nothing", async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-index-report-meta-');
  defer(() => dir.remove());
  await corruptBuffer(dir.path);
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  await raw.close();
  const lines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];
  const logger = capturingLogger(lines, 'info');
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger });
  defer(() => store.close());
  const registry = new Registry();
  registerBufferGauges(registry, store);
  const worker = new SnapshotReader(store.location, 0);
  defer(() => worker.close());
  const select = { dids: new Set([target]), collections: new Set<string>(), prefixes: [] };
  const found = worker.read(0, store.lastTimeUs, { maxEntries: 10_000, select, filter: (e) => e.did === target, ...store.indexState });
  assert.ok(!found.trimmed && found.inconsistency !== undefined, 'the worker met the corrupt entry');

  // The meta table's page goes bad before the worker's answer is handled.
  assert.ok(breakLeafPagesInPlace(dir.path, pageSize, Buffer.from('lastSeq')) > 0, "the meta table's page is broken");
  store.reportDidIndexInconsistent(found.inconsistency!, found.indexRebuilds!);

  assert.equal(store.didIndex.state, 'bypassed', 'DID replays scan the blocks');
  assert.equal(store.didIndex.inconsistencies, 1);
  const metrics = await registry.metrics();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
  assert.equal(value('contrail_store_did_index_mark_write_failures_total'), 1, 'the mark LMDB refused to write is counted');
  assert.equal(value('contrail_store_unreadable_reads_total'), 0, 'as a refused write, not a refused read');
  const errors = lines.filter((l) => l.level >= 50);
  assert.equal(errors.length, 1, `one error line: a failed write is not a failed read (no BufferUnreadable, no renewal, which writes meta again): ${JSON.stringify(errors)}`);
  assert.ok(/per-DID index/.test(errors[0]!.msg) && /MDB_[A-Z_]+/.test(String(errors[0]!.err)), `it says so, with LMDB's reason: ${JSON.stringify(errors)}`);
  assert.doesNotMatch(errors[0]!.msg, /next start/, 'the mark was never written: the next start trusts the index');
  assert.deepEqual(texts(readAll(store, { dids: [target] })), texts(stream.filter((e) => e.did === target)), "the repo's replay is exact");
});
