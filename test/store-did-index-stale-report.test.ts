/**
 * Two replay workers meet the same corrupt per-DID index entry in snapshots taken before it was
 * rebuilt; one's report reaches the EventStore after the rebuild the other's started has ended
 * (a small index is rebuilt within a few turns). That late report is about an index that no
 * longer exists: taken for a new inconsistency, it starts another whole rebuild, and counts
 * towards the 3 rebuilds within 24 h after which the index is abandoned until restart — one
 * corrupt entry met by a few workers at once could use them all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { corruptBuffer, target } from './support/corrupt-did-index.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';

test('a worker\'s report of an inconsistency it found in an index rebuilt since is not taken for a new one', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-index-stale-report-');
  defer(() => dir.remove());
  await corruptBuffer(dir.path);
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger: pino({ level: 'silent' }) });
  defer(() => store.close());
  const select = { dids: new Set([target]), collections: new Set<string>(), prefixes: [] };
  const replay = (reader: SnapshotReader) => {
    const read = reader.read(0, store.lastTimeUs, { maxEntries: 10_000, select, filter: (e) => e.did === target, ...store.indexState });
    assert.ok(!read.trimmed && read.inconsistency !== undefined, 'the read met the corrupt entry');
    return read;
  };
  const first = new SnapshotReader(store.location, 0);
  const second = new SnapshotReader(store.location, 0);
  defer(() => first.close());
  defer(() => second.close());
  const early = replay(first);
  const late = replay(second);

  store.reportDidIndexInconsistent(early.inconsistency!, early.indexRebuilds!);
  await waitUntil(() => store.didIndex.state === 'ok', 'the index rebuilt');
  store.reportDidIndexInconsistent(late.inconsistency!, late.indexRebuilds!);
  assert.equal(store.didIndex.state, 'ok', 'no second rebuild for the index already rebuilt');
  assert.equal(store.didIndex.inconsistencies, 1);
});
