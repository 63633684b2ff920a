/**
 * A v2 seq cursor is exact: the stream resumes at that seq, or says why not (CursorTooOld for
 * one older than the buffer, #info OutdatedCursor / FutureCursor otherwise). A cluster node that
 * was away longer than the stream's retention holds a seq gap (follower.ts #reportGap: "its
 * buffer has a gap; it continues from the oldest batch the stream still has"), committed by
 * commitAssigned. A client resuming on that node at a seq inside the gap — one it never got,
 * from another node — must be told events were missed, not be started at the first seq after
 * the gap as if nothing were: resolveCursor looks at the oldest seq only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { resolveCursor } from '../src/server/subscribe-events.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';

const DID = 'did:plc:alice000000000000000000a';

function eventAt(seq: number): Entry {
  const timeUs = 1_700_000_000_000_000 + seq * 10;
  return { timeUs, seq, did: DID, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${timeUs},"kind":"identity"}`) };
}

test('a v2 seq cursor inside the buffer\'s seq gap (a cluster node that fell behind the stream retention) is told events were missed', async (t) => {
  const dir = tempDir('contrail-seq-gap-');
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20, blockEvents: 4, fsync: false });
  t.after(async () => {
    await store.close();
    dir.remove();
  });
  // Seqs 1–8 applied, then the node was away: 9–19 expired from the stream; it goes on at 20.
  await store.commitAssigned({ entries: [1, 2, 3, 4, 5, 6, 7, 8].map(eventAt), revs: new Map() });
  await store.commitAssigned({ entries: [20, 21, 22, 23, 24].map(eventAt), revs: new Map() });

  assert.deepEqual(resolveCursor(store, 5), { position: eventAt(5).timeUs - 1 }, 'a seq the buffer holds resumes there');
  const inGap = resolveCursor(store, 12);
  assert.ok(
    inGap.greeting !== undefined,
    `cursor 12 (seqs 9-19 are not here) starts at time_us ${inGap.position} (seq ${[1, 2, 3, 4, 5, 6, 7, 8, 20].find((s) => eventAt(s).timeUs > inGap.position)}) with no notice that 8 events were missed`,
  );
});
