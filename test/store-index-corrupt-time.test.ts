/**
 * Issue #10, "a corrupt index entry … gets a clear log line and a defined outcome (… rebuild the
 * index …)". store-bad-input.test.ts corrupts a posting's partition number, which the read path
 * notices (the partition lacks that time_us). A posting whose time_us is corrupted instead — here
 * into the time_us of another repo's event in the same partition, as a flipped bit can make it —
 * names an event that exists: the read takes that event, the exact DID filter rejects it, and the
 * DID's own event is never read. The replay is then silently short, with no log line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { pino } from 'pino';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { readAll, texts } from './support/store-reads.ts';

test('a per-DID index entry whose time_us names another repo\'s event: the DID replay stays exact and says the index is inconsistent', async (t) => {
  const dir = tempDir('contrail-index-time-');
  t.after(() => dir.remove());
  const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'z')}`);
  const stream: Entry[] = Array.from({ length: 3_000 }, (_, i) => {
    const timeUs = 1_000_000 + i * 7;
    const did = dids[(i * 7919) % dids.length]!;
    return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
  });
  const target = stream[1_234]!.did;
  const expected = texts(stream.filter((e) => e.did === target));
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100 });
  await store.commit({ entries: stream, revs: new Map() });
  assert.deepEqual(texts(readAll(store, { dids: [target] })), expected);
  await store.close();

  // The target's posting for stream[1_234] now says time_us of stream[1_235] (another repo, same block, same partition).
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const key = didHash(target);
  let corrupted = 0;
  for (const value of [...byDid.getValues(key)]) {
    if (value.readUInt32BE(4) !== stream[1_234]!.timeUs) continue;
    const wrong = Buffer.from(value);
    wrong.writeUInt32BE(stream[1_235]!.timeUs, 4);
    byDid.removeSync(key, value);
    byDid.putSync(key, wrong);
    corrupted++;
  }
  assert.equal(corrupted, 1);
  assert.notEqual(stream[1_235]!.did, target);
  await raw.close();

  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger });
  t.after(() => store.close());
  const before = store.readPlans.didIndex;
  const replayed = texts(readAll(store, { dids: [target] }));
  assert.ok(store.readPlans.didIndex > before, 'the replay used the index');
  assert.deepEqual(replayed, expected, `the replay is exact despite the corrupt entry (it lost ${expected.length - replayed.length} of the DID's ${expected.length} events)`);
  assert.ok(lines.some((l) => l.level === 50 && /per-DID index is inconsistent/.test(l.msg)), 'and says what happened, so the index is rebuilt at the next start');
});
