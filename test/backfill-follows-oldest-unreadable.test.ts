/**
 * A subscriber whose cursor asks for the oldest event held (cursor=0) and whose backfill has
 * output to send starts there, from the oldest event read from the block directory as the output
 * goes out (replay-step.ts). A page of the directory that goes bad while contrail serves must end
 * that stream with BufferUnreadable (an error frame, then close 1011), not the process.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeBufferWithDirectory } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, httpGet, Subscription } from './support/subscribe-client.ts';

test('a directory page that goes bad before a cursor=0 subscriber sends its backfill output: BufferUnreadable and close 1011, and the gateway serves on', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-backfill-oldest-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKey } = await writeBufferWithDirectory(dataDir, 3);
  const gateway = await startTestGateway('ws://127.0.0.1:9', dataDir, { replayWorkers: 0 });
  defer(() => gateway.stop());
  defer(() => Subscription.closeAll());
  // The backfill starts at once and fails (no DID directory answers); its output waits for the hello.
  const client = await Subscription.open(gateway.port, `wantedDids=${ALICE}&backfill=true&requireHello=true&cursor=0`);
  await waitUntil(async () => /^contrail_backfill_snapshots_total\{result="[a-z_]+"\} [1-9]/m.test((await httpGet(gateway.metricsPort, '/metrics')).body.toString()), 'the backfill to fail');

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, directoryKey) > 0, 'a directory page is broken');
  client.ws.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [ALICE] } }));
  const close = await client.waitClosed();
  assert.equal(close.code, 1011, `closed with the reason: ${JSON.stringify(close)}`);
  assert.match(close.reason, /^BufferUnreadable: /);
  const error = client.events.at(-1)!;
  assert.equal(error.error, 'BufferUnreadable', JSON.stringify(client.events));
  assert.match(error.message, /MDB_[A-Z_]+/, 'naming what LMDB said');

  const live = await Subscription.open(gateway.port);
  assert.ok(live.isOpen, 'the gateway serves on');
});
