/**
 * A cluster node holds a v2 cursor ahead of its buffer until its buffer catches up with the
 * cluster's stream, then resolves it (Admission.resolveAhead). A page of the block directory that
 * goes bad meanwhile makes that resolution fail as a cursor looked up at the upgrade does: the
 * stream must end saying so (BufferUnreadable, close 1011), not that the cursor was too old.
 * Run without NATS: the gateway is given the wait for the stream (hub.awaitClusterStreamEnd)
 * a cluster node gives it, ended by the test.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { BLOCK, writeBufferWithDirectory } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { SUBSCRIBE_EVENTS, Subscription } from './support/subscribe-client.ts';

test('a directory page that goes bad while a v2 cursor ahead of the buffer waits for the cluster stream: BufferUnreadable and close 1011, not CursorTooOld', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-settle-unreadable-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKey } = await writeBufferWithDirectory(dataDir, 3);
  let caughtUp = () => {};
  const streamEnd = new Promise<void>((resolve) => (caughtUp = resolve));
  const gateway = await startTestGateway('ws://127.0.0.1:9', dataDir, { replayWorkers: 0 }, { hub: { awaitClusterStreamEnd: () => streamEnd } });
  defer(() => gateway.stop());
  defer(() => Subscription.closeAll());
  const client = await Subscription.open(gateway.port, `cursor=${3 * BLOCK + 10}`, { path: SUBSCRIBE_EVENTS });

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, directoryKey) > 0, 'a directory page is broken');
  caughtUp();
  const close = await client.waitClosed();
  assert.equal(close.code, 1011, `closed as unreadable: ${JSON.stringify(close)}`);
  assert.match(close.reason, /^BufferUnreadable: .*MDB_[A-Z_]+/);
});
