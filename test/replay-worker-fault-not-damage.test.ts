/**
 * A replay worker's read can fail for reasons that are no damage to the buffer: its snapshot
 * older than the request (SnapshotReader's check), or a fault in the worker's own code. Every
 * such failure was counted in contrail_store_worker_unreadable_reads_total and logged as disk
 * damage ("check the disk"), once per message: the snapshot's message carries its time_us, so a
 * recurring one was logged at every read and the store kept every message it had seen. It must be
 * said once per kind as a fault of the worker, not counted as damage, and its batch still read on
 * the main thread. Here the worker reads an older copy of the buffer, so its snapshot ends before
 * every request, as when it misses a commit.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventStore } from '../src/store/index.ts';
import { BLOCK, blockStream, BUNDLED_DICTIONARY } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { replayReadsRig } from './support/replay-reads-rig.ts';
import { texts } from './support/store-reads.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';

test("a replay worker's read that fails on a snapshot older than the request is said once as a worker fault, not counted as damage, and read on the main thread", { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-worker-fault-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const olderDir = join(dir.path, 'older');
  const events = blockStream(3).slice(0, 2 * BLOCK + 30);
  const writer = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY });
  await writer.commit({ entries: events.slice(0, 2 * BLOCK), revs: new Map() });
  await writer.close();
  mkdirSync(olderDir);
  copyFileSync(join(dataDir, 'data.mdb'), join(olderDir, 'data.mdb'));

  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, logger });
  defer(() => store.close());
  const { subscriberAt, nextBatch } = await replayReadsRig(defer, store, logger, { ...store.location, dataDir: olderDir });
  const workerLines = () => lines.filter((line) => line.level >= 40 && /replay worker/.test(line.msg));

  // Each commit moves the request's end on: each failure's message names another time_us.
  for (const [round, [from, to]] of [
    [2 * BLOCK, 2 * BLOCK + 10],
    [2 * BLOCK + 10, 2 * BLOCK + 30],
  ].entries()) {
    await store.commit({ entries: events.slice(from, to), revs: new Map() });
    const expected = texts(events.slice(11, to));
    const batch = await nextBatch(subscriberAt(events[10]!.timeUs));
    assert.deepEqual(texts(batch.entries).slice(0, expected.length), expected.slice(0, batch.entries.length), `round ${round}: the main thread reads the batch`);
    assert.ok(batch.entries.length > 0, `round ${round}: a batch`);
  }
  assert.equal(workerLines().length, 1, `said once: ${JSON.stringify(workerLines())}`);
  assert.match(String(workerLines()[0]!.err), /older than the request/, "with the worker's reason");
  assert.doesNotMatch(workerLines()[0]!.msg, /damaged on disk|check the disk/, 'not as damage');
  assert.equal(store.workerUnreadableReads, 0, 'no read counted as damage');
});
