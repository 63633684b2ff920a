/**
 * A tail run a block covers only in part stays in the tail table until its last events are
 * sealed (event-store.ts #tailDb). Retention may remove that block first. Reopened, the buffer
 * must not bring back the removed block's events from the run that outlived it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';

const BLOCK = 4;

function events(count: number): Entry[] {
  return Array.from({ length: count }, (_, i) => {
    const timeUs = 1_700_000_000_000_000 + i + 1;
    return { timeUs, did: 'did:plc:alice', kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(`{"time_us":${timeUs},"n":${i}}`) } satisfies Entry;
  });
}

test('a block retention removed stays removed after a restart, though the tail run it shared with unsealed events is still stored', async (t) => {
  const dir = tempDir('contrail-trimmed-run-');
  t.after(() => dir.remove());
  const all = events(BLOCK + 2);
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK, fsync: false });
  // One commit, one tail run: the block seals its first BLOCK events, the run stays for the last two.
  await store.commit({ entries: all.map((e) => ({ ...e })), revs: new Map() });
  for (let turns = 0; store.indexState.sealedEvents < BLOCK; turns++) {
    assert.ok(turns < 100, 'the block is sealed');
    await nextTurn();
  }
  // The size bound removes the (only) block: the tail still holds the newest events.
  assert.equal(await store.trimOldest(100), BLOCK);
  assert.equal(store.trimmedUpTo, all[BLOCK - 1]!.timeUs);
  assert.deepEqual(store.oldest(), { timeUs: all[BLOCK]!.timeUs, seq: BLOCK + 1 });
  assert.equal(store.span().eventCount, 2);
  await store.close();

  const reopened = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK, fsync: false });
  t.after(() => reopened.close());
  assert.equal(reopened.trimmedUpTo, all[BLOCK - 1]!.timeUs);
  assert.deepEqual(reopened.oldest(), { timeUs: all[BLOCK]!.timeUs, seq: BLOCK + 1 }, 'the oldest event is the oldest one retention kept');
  assert.equal(reopened.span().eventCount, 2, 'only the two events retention kept');
  // A v2 seq cursor inside the removed block must be too old (CursorTooOld), not resolve to a time_us retention passed.
  const resolved = reopened.atSeq(2)?.timeUs;
  assert.ok(resolved === undefined || resolved > reopened.trimmedUpTo, `seq 2 resolves to time_us ${resolved}, at or below trimmedUpTo ${reopened.trimmedUpTo}`);
});
