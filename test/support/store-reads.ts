import type { Entry } from '../../src/events/index.ts';
import type { EventStore } from '../../src/store/index.ts';

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
