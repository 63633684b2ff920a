/**
 * A per-DID index that breaks again after every rebuild (a bug, a failing disk) is not rebuilt
 * for ever: after 3 rebuilds within 24 h, the next inconsistency abandons it — DID-filtered
 * replays scan the blocks, exact, no rebuild starts, one error line says so, and
 * contrail_store_did_index_state is 3 — until the next start, which rebuilds it once more.
 * Rebuilds older than the window do not count. Before, every inconsistency found started
 * another rebuild.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { openEnvironment, openTables } from '../src/store/environment.ts';
import { EventStore, registerBufferGauges } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { quietRepoEvents } from './support/quiet-repos.ts';
import { readAll, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const HOUR_MS = 3_600_000;

test('a per-DID index found inconsistent again after 3 rebuilds within 24 h is abandoned: replays scan, exact, until the next start', async (t) => {
  const dir = tempDir('contrail-index-cap-');
  t.after(() => dir.remove());
  const stream = quietRepoEvents('c');
  const event = stream.find((e, i) => i > 1_000 && e.collection !== 'app.bsky.graph.follow')!;
  const expected = texts(stream.filter((e) => e.did === event.did));
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, fsync: false });
  await store.commit({ entries: stream, revs: new Map() });
  await store.close();

  let nowMs = 0;
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = capturingLogger(lines, 'info');
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, fsync: false, logger, nowMs: () => nowMs });
  t.after(() => store.close());
  const registry = new Registry();
  registerBufferGauges(registry, store);
  const state = async () => Number(/^contrail_store_did_index_state (\d+)$/m.exec(await registry.metrics())![1]);
  // The store's own environment (lmdb-js shares it within the process): the index table as a broken disk or bug would leave it.
  const { byDid, partitions } = openTables(openEnvironment(store.location));
  const follows = partitions.get('app.bsky.graph.follow')!;
  /** Points the event's index entry at the follows' partition, which does not hold it. */
  const breakIndex = async () => {
    const found = [...byDid.getRange()].find(({ value }) => value.readUInt32BE(4) === event.timeUs % 2 ** 32);
    assert.ok(found, 'the event has an index entry');
    const wrong = Buffer.from(found.value);
    wrong.writeUInt16BE(follows, 8);
    byDid.removeSync(found.key, found.value);
    byDid.putSync(found.key, wrong);
    // lmdb-js keeps the store's read snapshot until a 0 ms timer it set at the store's last read:
    // one set now fires after it, and the store's next read sees the broken entry.
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  const rebuildsStarted = () => lines.filter((l) => /^rebuilding the per-DID index/.test(l.msg)).length;
  /** Breaks the index, replays the DID (exact, it finds the break), and waits for the rebuild it starts. */
  const breakAndRebuild = async (round: number) => {
    await breakIndex();
    assert.deepEqual(texts(readAll(store, { dids: [event.did] })), expected, `round ${round}: the replay is exact`);
    assert.equal(store.didIndex.inconsistencies, round);
    assert.equal(rebuildsStarted(), round, `round ${round}: a rebuild started`);
    await waitUntil(() => store.didIndex.state === 'ok', `rebuild ${round} done`);
  };

  // Two rebuilds, then a day passes: they leave the window.
  await breakAndRebuild(1);
  await breakAndRebuild(2);
  nowMs += 25 * HOUR_MS;
  // Three more within the window; the index breaks again after the third.
  await breakAndRebuild(3);
  nowMs += HOUR_MS;
  await breakAndRebuild(4);
  nowMs += HOUR_MS;
  await breakAndRebuild(5);
  nowMs += HOUR_MS;
  await breakIndex();
  const indexReads = store.readPlans.didIndex;
  assert.deepEqual(texts(readAll(store, { dids: [event.did] })), expected, 'the replay that finds it is exact');
  assert.deepEqual(store.didIndex, { state: 'abandoned', inconsistencies: 6 });
  assert.equal(await state(), 3, 'the state metric says so');
  assert.equal(rebuildsStarted(), 5, 'no sixth rebuild');
  const abandoned = lines.filter((l) => l.level === 50 && /per-DID index is inconsistent again.*abandoned/.test(l.msg));
  assert.equal(abandoned.length, 1, 'one error line says it');
  const afterFinding = store.readPlans.didIndex;
  for (let i = 0; i < 3; i++) assert.deepEqual(texts(readAll(store, { dids: [event.did] })), expected, 'later replays are exact');
  assert.equal(store.readPlans.didIndex, afterFinding, 'and scan');
  assert.ok(afterFinding > indexReads, 'the replay that found it read through the index');
  assert.equal(lines.filter((l) => l.level === 50).length, 6, 'no more error lines');
  await store.close();

  // The next start rebuilds it once more.
  lines.length = 0;
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, fsync: false, logger });
  assert.equal(store.didIndex.state, 'rebuilding');
  await waitUntil(() => store.didIndex.state === 'ok', 'the rebuild at the next start');
  const before = store.readPlans.didIndex;
  assert.deepEqual(texts(readAll(store, { dids: [event.did] })), expected);
  assert.ok(store.readPlans.didIndex > before, 'replays use the index again');
});
