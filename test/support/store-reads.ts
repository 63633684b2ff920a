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

/**
 * The time_us of every event one read path gives from `from` on (the main thread's store, a replay
 * worker's reader), until it gives nothing new or throws: what it read, and what it threw.
 */
export function readTimesUntilError(read: (position: number) => { entries: Entry[]; position: number }, from: number): { times: number[]; error?: unknown } {
  const got: number[] = [];
  let position = from;
  for (let reads = 0; reads < 100; reads++) {
    let result: { entries: Entry[]; position: number };
    try {
      result = read(position);
    } catch (error) {
      return { times: got, error };
    }
    for (const entry of result.entries) got.push(entry.timeUs);
    if (result.position === position) break;
    position = result.position;
  }
  return { times: got };
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
