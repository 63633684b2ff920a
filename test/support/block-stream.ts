/**
 * A buffer of whole blocks of posts and likes from 97 repos, written straight through the store
 * with the bundled dictionary: what the damaged-buffer tests break on disk and then serve.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../../src/events/index.ts';
import { EventStore } from '../../src/store/index.ts';

export const BUNDLED_DICTIONARY = readFileSync(fileURLToPath(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url)));
/** The store's block size: the stream's events fill whole blocks. */
export const BLOCK = 1_024;
export const POST = 'app.bsky.feed.post';
export const LIKE = 'app.bsky.feed.like';
/** A repo with events in every block, few enough for its replays to read through the per-DID index. */
export const REPO_IN_EVERY_BLOCK = `did:plc:${'5'.padStart(24, 'd')}`;

/** `blocks` blocks of commits 10 µs apart, within the default --retention of now so a gateway keeps them all; every third a like. */
export function blockStream(blocks: number): Entry[] {
  const first = Date.now() * 1000 - 600_000_000;
  return Array.from({ length: blocks * BLOCK }, (_, i) => {
    const timeUs = first + i * 10;
    const did = `did:plc:${String(i % 97).padStart(24, 'd')}`;
    const collection = i % 3 === 2 ? LIKE : POST;
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"3l${i}","operation":"create","collection":"${collection}","rkey":"r${i}","record":{"text":"${i}"}}}`;
    return { timeUs, did, kind: 'commit', collection, json: Buffer.from(json) };
  });
}

/** Writes `events` to a new buffer in `dataDir` and closes it. */
export async function writeBuffer(dataDir: string, events: Entry[]): Promise<void> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY });
  await store.commit({ entries: events, revs: new Map() });
  await store.close();
}

/** LMDB's page size and the keys of the named table in the closed buffer in `dataDir`, in order. */
async function pageSizeAndKeys(dataDir: string, table: string): Promise<{ pageSize: number; keys: Buffer[] }> {
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  const keys = [...raw.openDB<unknown, Buffer>({ name: table, keyEncoding: 'binary' }).getKeys()].map((key) => Buffer.from(key));
  await raw.close();
  return { pageSize, keys };
}

/**
 * Writes `blocks` blocks of blockStream to a new buffer in `dataDir` and closes it; returns LMDB's
 * page size and the block directory's keys (the first as directoryKey), for a test that damages
 * the directory under a running contrail (breakLeafPagesInPlace, test/support/lmdb-pages.ts).
 */
export async function writeBufferWithDirectory(dataDir: string, blocks: number): Promise<{ pageSize: number; directoryKey: Buffer; directoryKeys: Buffer[] }> {
  await writeBuffer(dataDir, blockStream(blocks));
  const { pageSize, keys } = await pageSizeAndKeys(dataDir, 'directory');
  return { pageSize, directoryKey: keys[0]!, directoryKeys: keys };
}

/**
 * Writes two sealed blocks of blockStream and half a block in the tail to a new buffer in
 * `dataDir` and closes it; returns the events, LMDB's page size and the tail's first key, for a
 * test that breaks the tail's page, which only a replay worker reads from LMDB (the main thread
 * holds the tail in memory).
 */
export async function writeBufferWithTail(dataDir: string): Promise<{ events: Entry[]; pageSize: number; tailKey: Buffer }> {
  const events = blockStream(3).slice(0, 2 * BLOCK + BLOCK / 2);
  await writeBuffer(dataDir, events);
  const { pageSize, keys } = await pageSizeAndKeys(dataDir, 'tail');
  return { events, pageSize, tailKey: keys[0]! };
}
