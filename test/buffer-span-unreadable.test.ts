/**
 * The buffer's span (its oldest event, read from the block directory) is read outside any replay:
 * by GET /stats, by the status line every interval, and by a metrics scrape. A page of the
 * directory that goes bad while contrail serves must get each a clear answer (a 503
 * BufferUnreadable with LMDB's reason; a status line and gauges saying what can still be read),
 * counted, and the gateway must serve on.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { BLOCK, writeBufferWithDirectory } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';
import { httpGet, Subscription } from './support/subscribe-client.ts';
import { capturingLogger } from './support/upstream-harness.ts';

test('a directory page that goes bad while serving: /stats answers 503 BufferUnreadable, the status line and the gauges say what can be read, counted, and the gateway serves on', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-span-unreadable-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKey } = await writeBufferWithDirectory(dataDir, 3);
  const lines: Array<Record<string, any>> = [];
  const logger = capturingLogger(lines, 'info');
  const gateway = await startTestGateway('ws://127.0.0.1:9', dataDir, { replayWorkers: 0 }, { logger, statusIntervalMs: 200 });
  defer(() => gateway.stop());
  defer(() => Subscription.closeAll());
  const statusLines = () => lines.filter((line) => line.status === true);
  await waitUntil(() => statusLines().length > 0, 'a status line');
  assert.equal(statusLines()[0]!.bufferEvents, 3 * BLOCK, 'the buffer as it was');

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, directoryKey) > 0, 'a directory page is broken');
  const stats = await httpGet(gateway.port, '/stats');
  assert.equal(stats.status, 503, `refused with the reason, not ${stats.status} ${stats.body.toString()}`);
  const refusal = JSON.parse(stats.body.toString());
  assert.equal(refusal.error, 'BufferUnreadable');
  assert.match(refusal.message, /MDB_[A-Z_]+/, 'naming what LMDB said');

  const said = statusLines().length;
  await waitUntil(() => statusLines().length > said + 1, 'status lines after the page broke');
  const status = statusLines().at(-1)!;
  assert.match(status.msg, /buffer unreadable \(.*MDB_[A-Z_]+/, `the status line says the buffer cannot be read, and why: ${status.msg}`);
  assert.equal(status.bufferEvents, 3 * BLOCK, 'and what it can: the events held');

  const metrics = await httpGet(gateway.metricsPort, '/metrics');
  assert.equal(metrics.status, 200, `a scrape still answers: ${metrics.body.toString().slice(0, 200)}`);
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics.body.toString())?.[1]);
  assert.ok(Number.isNaN(value('contrail_store_oldest_event_timestamp_seconds')), 'the oldest event cannot be read');
  assert.equal(value('contrail_store_buffered_events'), 3 * BLOCK, 'the events held can');
  assert.ok(value('contrail_store_newest_event_timestamp_seconds') > 0, 'and the newest event');
  assert.ok(value('contrail_store_unreadable_reads_total') >= 3, 'every read LMDB refused is counted');
  assert.equal(lines.filter((line) => line.msg.startsWith('the buffer could not be read')).length, 1, 'the reason is logged once');

  // Serves on: a live subscriber is opened.
  const live = await Subscription.open(gateway.port);
  assert.ok(live.isOpen);
});
