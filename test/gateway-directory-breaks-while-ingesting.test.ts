/**
 * A page of the block directory that goes bad while contrail reads the relay (a disk that returns
 * other bytes than were written, read through LMDB's memory map). A commit is durable once LMDB
 * committed it: whatever reads the buffer after it (retention's check of the size bound, run as
 * each commit is announced) must not make the commit look failed, or ingest writes the batch
 * again, and its events are stored and sent twice.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeBufferWithDirectory } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, POST, Subscription, Upstream } from './support/subscribe-client.ts';
import { capturingLogger } from './support/upstream-harness.ts';

test('a directory page that goes bad while ingesting: each event is committed once and sent once, and no commit is taken for failed', { timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-directory-breaks-ingest-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKey } = await writeBufferWithDirectory(dataDir, 3);
  const lines: Array<{ msg: string; level: number }> = [];
  const logger = capturingLogger(lines, 'info');
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const gateway = await startTestGateway(relay.url, dataDir, { replayWorkers: 0 }, { logger });
  defer(() => gateway.stop());
  defer(() => Subscription.closeAll());
  await relay.waitForConnections(1);
  const up = new Upstream(relay, () => gateway.port);
  const live = await Subscription.open(gateway.port);
  const seqBefore = gateway.store.lastSeq;

  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, directoryKey) > 0, 'a directory page is broken');
  const commits = 20;
  for (let i = 0; i < commits; i++) up.create(ALICE, POST);
  await waitUntil(() => (gateway.store.upstreamCursor?.seq ?? 0) >= up.seq, `the gateway to store upstream seq ${up.seq}`);
  await live.waitForCount(commits, 'the live events');

  const failed = lines.filter((line) => line.msg.startsWith('STORE COMMIT FAILED'));
  assert.deepEqual(failed, [], 'no commit is taken for failed (ingest would write its batch again)');
  assert.equal(gateway.store.lastSeq, seqBefore + commits, 'each event got one seq');
  // One more, after the others: had ingest written a batch again, it would have come before it.
  up.create(ALICE, POST);
  await live.waitForCount(commits + 1, 'the last live event');
  const sent = live.events.map((event) => event.time_us as number);
  assert.equal(new Set(sent).size, sent.length, `each event sent once: ${sent.length} sent`);
  assert.equal(sent.length, commits + 1);
});
