/**
 * A repo backfill's catch-up reads the repo's stored events from where the subscriber asked
 * (subscriber-backfill.ts #catchUp), by DID and every collection, whatever the subscriber's own
 * filter reads: a client replaying posts from the past passes a block whose likes' partition was
 * damaged on disk, and the catch-up for a repo with a like there meets it. The read's error was
 * thrown out of the snapshot's promise handler, an unhandled rejection that ends the process.
 * The repo must end `failed` with `buffer_damaged` instead, naming the events lost, and its
 * withheld events that can be read must still follow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { repoBackfill } from './support/backfill-catch-up.ts';
import { cleanup } from './support/cleanup.ts';
import { damagePartition } from './support/damaged-block.ts';
import { tempDir } from './support/gateway.ts';

const REPO = 'did:plc:repo0000000000000000000a';
const OTHER = 'did:plc:other000000000000000000';
const LIKE = 'app.bsky.feed.like';
const POST = 'app.bsky.feed.post';
const BLOCK = 10;
const rev = (n: number) => `3l${n.toString().padStart(10, '0')}`;

/** 40 events in blocks of 10: OTHER's posts, and REPO's likes at 5, 15 (in the damaged block) and 25; 35 stays in the tail. */
function events(base: number): Entry[] {
  return Array.from({ length: 40 }, (_, n) => {
    const timeUs = base + n;
    const [did, collection] = n % 10 === 5 ? [REPO, LIKE] : [OTHER, POST];
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"${rev(n + 1)}","operation":"create","collection":"${collection}","rkey":"r${n}","record":{},"cid":"bafy${n}"}}`;
    return { timeUs, did, kind: 'commit', collection, json: Buffer.from(json) };
  });
}

test("a backfill whose catch-up meets a block damaged on disk ends failed with buffer_damaged, naming the events lost, and the repo's readable withheld events follow", { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-backfill-damaged-');
  defer(() => dir.remove());
  const base = 1_700_000_000_000_000;
  const stored = events(base);
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, blockEvents: BLOCK });
  await store.commit({ entries: stored, revs: new Map() });
  await store.close();
  // The second block's likes: a byte of its frame flipped, as a bad sector would.
  await damagePartition(dir.path, stored[2 * BLOCK - 1]!.timeUs, LIKE);
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, blockEvents: BLOCK });
  defer(() => store.close());

  // The subscriber asked at the start of the buffer and has replayed (its posts) to the tip, REPO's events withheld.
  const { backfill, catchUp } = repoBackfill(store, REPO, defer);
  for (const entry of stored) if (entry.did === REPO) assert.equal(backfill.withholds(entry), true);
  const messages = await catchUp(rev(0));

  const status = messages.find((m) => m.kind === 'backfill');
  assert.equal(status?.backfill?.status, 'failed', JSON.stringify(status));
  assert.equal(status?.backfill?.reason, 'buffer_damaged');
  assert.match(status?.backfill?.message ?? '', new RegExp(`time_us ${stored[BLOCK]!.timeUs} to ${stored[2 * BLOCK - 1]!.timeUs}`), 'it names the events lost');
  const sent = messages.filter((m) => m.kind === 'commit').map((m) => m.time_us);
  assert.deepEqual(sent, [5, 25, 35].map((n) => stored[n]!.timeUs), "the repo's withheld events that can be read, in order");
});
