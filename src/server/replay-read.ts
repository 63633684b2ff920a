import type { Entry } from '../events/index.ts';
import type { EventStore, ReadResult } from '../store/index.ts';
import { sendsEvent, type SubscriberFilter } from './filter.ts';

const READ_BATCH = 512;
/** Bounds one read's time (a few ms) when the filter matches little of what is read. */
const READ_SCAN_LIMIT = 10_000;

/**
 * One replay step's read: the events after `position` that the filter sends, at most one batch,
 * and the position examined up to. tooLarge hears of each wanted event over the size limit;
 * events `withheld` (by a backfill) are passed over.
 */
export function readReplayBatch(store: EventStore, position: number, filter: SubscriberFilter, tooLarge: () => void, withheld?: (entry: Entry) => boolean): ReadResult {
  const sends = (entry: Entry) => !withheld?.(entry) && sendsEvent(filter, entry, tooLarge);
  return store.readAfter(position, { maxEntries: READ_BATCH, maxScanned: READ_SCAN_LIMIT, filter: sends, select: filter });
}
