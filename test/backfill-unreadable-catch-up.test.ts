/**
 * A repo backfill's catch-up reads the repo's stored events through the buffer's per-DID index
 * (subscriber-backfill.ts #catchUp). A page of that index damaged on disk makes LMDB refuse the
 * read (MDB_CORRUPTED): the error was thrown out of the snapshot's promise handler, an unhandled
 * rejection that ends the process. The repo must end `failed` with `buffer_unreadable` instead,
 * saying why, and the subscriber's stream go on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore } from '../src/store/index.ts';
import { repoBackfill } from './support/backfill-catch-up.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesOf } from './support/lmdb-pages.ts';

const REPO = 'did:plc:repo0000000000000000000a';
const BLOCK = 100;
const rev = (n: number) => `3l${n.toString().padStart(10, '0')}`;

/** 2,000 events of 50 other repos, and REPO's every 500th: few enough for its reads to go through the index. */
function events(base: number): Entry[] {
  return Array.from({ length: 2_000 }, (_, n) => {
    const timeUs = base + n;
    const did = n % 500 === 5 ? REPO : `did:plc:other${String(n % 50).padStart(18, '0')}`;
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"${rev(n + 1)}","operation":"create","collection":"app.bsky.feed.like","rkey":"r${n}","record":{},"cid":"bafy${n}"}}`;
    return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(json) };
  });
}

test('a backfill whose catch-up read LMDB refuses (a page of the per-DID index damaged on disk) ends failed with buffer_unreadable, and nothing is thrown', { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-backfill-unreadable-');
  defer(() => dir.remove());
  const stored = events(1_700_000_000_000_000);
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, blockEvents: BLOCK });
  await store.commit({ entries: stored, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  await raw.close();
  breakLeafPagesOf(dir.path, pageSize, didHash(REPO));
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, blockEvents: BLOCK });
  defer(() => store.close());

  const { catchUp } = repoBackfill(store, REPO, defer);
  const messages = await catchUp(rev(0));

  const status = messages.find((m) => m.kind === 'backfill');
  assert.equal(status?.backfill?.status, 'failed', JSON.stringify(status));
  assert.equal(status?.backfill?.reason, 'buffer_unreadable');
  assert.match(status?.backfill?.message ?? '', /cannot be read after time_us \d+ \(MDB_[A-Z_]+/, 'it says why');
});
