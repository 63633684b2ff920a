import type { Entry } from '../../src/events/index.ts';

/** Events per block in the stepped-seal tests. */
export const SEAL_CRASH_BLOCK = 100;
/** Full blocks the tests' commit leaves in the tail: fewer than the store seals at once (SEAL_AT_ONCE_BLOCKS), so each is sealed in steps. */
export const SEAL_GROUP = 8;
export const SEAL_DIDS = Array.from({ length: 200 }, (_, i) => `did:plc:${String(i).padStart(24, 'q')}`);
const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow', null];

/** Eight blocks and part of the next: the events of the stepped-seal tests (seq given by the store). */
export function sealCrashEvents(count = SEAL_GROUP * SEAL_CRASH_BLOCK + 50): Entry[] {
  return Array.from({ length: count }, (_, i) => {
    const timeUs = 2_000_000 + i * 3;
    const did = SEAL_DIDS[(i * 7) % SEAL_DIDS.length]!;
    const collection = COLLECTIONS[i % COLLECTIONS.length]!;
    const kind = collection === null ? ('identity' as const) : ('commit' as const);
    return { timeUs, did, kind, collection, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"${kind}","i":${i}}`) };
  });
}
