/**
 * Ingest reads each repo's last stored rev (the `revs` table) on the main thread to skip commits
 * already stored. A page of that table that goes bad while contrail reads the relay (a disk that
 * returns other bytes than were written) must not end the process nor lose the commit: the rev it
 * cannot read skips nothing, the read is counted and said once, and the commit, which cannot write
 * its rev either, fails and is retried as any failing commit is (ingest paused, /ready saying
 * why), with the saved cursor still below it, so a restart reads it again.
 */
import assert from 'node:assert/strict';
import { open as openLmdb } from 'lmdb';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, BOB, httpGet, POST, Subscription, Upstream } from './support/subscribe-client.ts';
import { capturingLogger } from './support/upstream-harness.ts';

test('a page of the revs table that goes bad while ingesting: the gateway runs on, the commit is retried and not lost, and /ready says why', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-revs-breaks-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const lines: Array<Record<string, any>> = [];
  const logger = capturingLogger(lines, 'info');
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const gateway = await startTestGateway(relay.url, dataDir, { replayWorkers: 0 }, { logger });
  // Its last commit cannot be written: the stop gives up flushing it after a second, not ten.
  defer(() => gateway.stop(1_000));
  defer(() => Subscription.closeAll());
  await relay.waitForConnections(1);
  const up = new Upstream(relay, () => gateway.port);
  const stored = up.create(ALICE, POST);
  await waitUntil(() => (gateway.store.upstreamCursor?.seq ?? 0) >= stored, 'the first commit stored');

  const raw = openLmdb({ path: dataDir, maxDbs: 16, readOnly: true });
  const { pageSize } = raw.getStats() as { pageSize: number };
  await raw.close();
  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, Buffer.from(ALICE)) > 0, 'the revs page is broken');
  // A repo whose rev ingest has not read yet: read from the broken page.
  const next = up.create(BOB, POST);
  await waitUntil(() => lines.some((line) => line.msg.startsWith('STORE COMMIT FAILED')), 'the commit to fail');

  const ready = await httpGet(gateway.port, '/ready');
  assert.equal(ready.status, 503);
  assert.match(ready.body.toString(), /store commits are failing: .*MDB_[A-Z_]+/, 'saying why');
  assert.equal(gateway.store.upstreamCursor?.seq, stored, `the saved cursor stays below seq ${next}: a restart reads it again`);
  assert.equal(gateway.store.unreadableReads, 1, 'the rev it could not read is counted');
  assert.equal((await httpGet(gateway.port, '/health')).status, 200, 'the gateway runs on');
});
