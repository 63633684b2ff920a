import type { Entry } from '../../src/events/index.ts';
import type { Batch, EventStore } from '../../src/store/index.ts';

/** Every stored event, from the oldest on, as a replay reads them: all, or the DIDs' (through the index when it is selective). */
export function readAll(store: EventStore, options: { dids?: string[] } = {}): Entry[] {
  const select = { dids: new Set(options.dids ?? []), collections: new Set<string>(), prefixes: [] };
  const filter = (e: Entry) => select.dids.size === 0 || select.dids.has(e.did);
  const out: Entry[] = [];
  let position = 0;
  for (;;) {
    const read = store.readAfter(position, { maxEntries: 100, filter, select });
    if (read.entries.length === 0 && read.position === position) return out;
    out.push(...read.entries);
    position = read.position;
  }
}

/** The events' JSON, to compare. */
export const texts = (entries: readonly Entry[]) => entries.map((e) => e.json.toString());

/** The batch a leader would write next: one identity event of `did` after the store's last, from `relayUrl` at `cursorSeq`. */
export function batchAfter(store: EventStore, did: string, relayUrl: string, cursorSeq: number): Batch {
  const timeUs = Math.max(store.lastTimeUs, 1_700_000_000_000_000) + 1;
  const seq = store.lastSeq + 1;
  return {
    entries: [{ timeUs, seq, did, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"identity"}`) }],
    revs: new Map(),
    cursor: { url: relayUrl, seq: cursorSeq },
  };
}
