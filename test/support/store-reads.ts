import type { Entry } from '../../src/events/index.ts';
import type { Batch, EventStore, Selection } from '../../src/store/index.ts';

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

/** One read path of the buffer (the main thread's store, a replay worker's reader): the events after `position`. */
export type ReadPath = (position: number, select?: Selection) => { entries: Entry[]; position: number };

/** A replay from `from` through `read` until it ends or throws: the events it got, and what it threw, if anything. */
export function replayUntilError(read: ReadPath, from: number, select?: Selection): { entries: Entry[]; err?: unknown } {
  const entries: Entry[] = [];
  let position = from;
  for (;;) {
    let result: ReturnType<ReadPath>;
    try {
      result = read(position, select);
    } catch (err) {
      return { entries, err };
    }
    entries.push(...result.entries);
    if (result.position === position) return { entries };
    position = result.position;
  }
}

/** replayUntilError's events as their time_us. */
export function timesUntilError(read: ReadPath, from: number): { times: number[]; error?: unknown } {
  const { entries, err } = replayUntilError(read, from);
  return { times: entries.map((entry) => entry.timeUs), error: err };
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

/** A batch of `count` identity events of `did` from seq `first` on, at time_us `base` + seq, as from a relay whose seqs they were. */
export function identityBatch(did: string, first: number, count: number, base: number): Batch {
  const entries = Array.from({ length: count }, (_, i) => {
    const seq = first + i;
    const timeUs = base + seq;
    return { timeUs, seq, did, kind: 'identity' as const, collection: null, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"identity"}`) };
  });
  return { entries, revs: new Map(), cursor: { url: 'ws://relay.invalid', seq: first + count - 1 } };
}
