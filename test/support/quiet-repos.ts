import type { Entry } from '../../src/events/index.ts';

const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow'];

/**
 * 3,000 commits 7 µs apart from time_us 1,000,000, of 300 quiet repos (their DIDs padded with
 * `pad`, the character each test padded its own with), a like, a post and a follow in turn: one DID's index
 * range is selective enough to be used.
 */
export function quietRepoEvents(pad: string): Entry[] {
  const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, pad)}`);
  return Array.from({ length: 3_000 }, (_, i) => {
    const timeUs = 1_000_000 + i * 7;
    const did = dids[(i * 7919) % dids.length]!;
    const collection = COLLECTIONS[i % COLLECTIONS.length]!;
    return { timeUs, did, kind: 'commit', collection, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"collection":"${collection}"}}`) };
  });
}
