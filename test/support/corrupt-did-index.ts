import { open as openLmdb } from 'lmdb';
import type { Entry } from '../../src/events/index.ts';
import { didHash } from '../../src/store/did-keys.ts';
import { EventStore } from '../../src/store/index.ts';

/** 3,000 events of 300 repos; the per-DID index of a buffer of them is broken at `target`'s event stream[1_234]. */
export const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'w')}`);
export const stream: Entry[] = Array.from({ length: 3_000 }, (_, i) => {
  const timeUs = 1_000_000 + i * 7;
  const did = dids[(i * 7919) % dids.length]!;
  return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
});
export const target = stream[1_234]!.did;

/** A buffer of `stream` (blocks of 100) whose posting for stream[1_234] names stream[1_235], another repo's event. */
export async function corruptBuffer(path: string): Promise<void> {
  const store = new EventStore({ dataDir: path, hotLogBytes: 0, blockEvents: 100 });
  await store.commit({ entries: stream, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path, maxDbs: 16 });
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const key = didHash(target);
  const value = [...byDid.getValues(key)].find((v) => v.readUInt32BE(4) === stream[1_234]!.timeUs)!;
  const wrong = Buffer.from(value);
  wrong.writeUInt32BE(stream[1_235]!.timeUs, 4);
  byDid.removeSync(key, value);
  byDid.putSync(key, wrong);
  await raw.close();
}
