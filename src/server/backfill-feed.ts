import { MAX_BACKFILL_DIDS, SubscriberBackfill, type BackfillContext } from '../backfill/index.ts';
import type { Entry } from '../events/index.ts';
import { isTooLarge, OptionError, wantsEvent, type SubscriberFilter } from './filter.ts';
import type { Subscriber } from './subscriber.ts';

/** Backfill output sent in one replay step, at most (one step per turn, as reads are). */
const OUTPUT_BATCH = 512;

/**
 * `backfill` (the query's `true`/`false`, or a JSON boolean in options_update): backfill each
 * wanted repo. It needs wantedDids, at most MAX_BACKFILL_DIDS of them: each is a repo export.
 */
export function parseBackfill(value: unknown, filter: SubscriberFilter, available: boolean): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (value !== true) throw new OptionError(`backfill: ${JSON.stringify(value)} must be true or false`);
  if (!available) throw new OptionError('backfill: this server does not backfill (started with --no-backfill)');
  if (filter.dids.size === 0) throw new OptionError('backfill: needs wantedDids, the repos to backfill');
  if (filter.dids.size > MAX_BACKFILL_DIDS) {
    throw new OptionError(`backfill: at most ${MAX_BACKFILL_DIDS} wantedDids can be backfilled, ${filter.dids.size} given`);
  }
  return true;
}

/**
 * The hub's side of backfill (the backfill stage fetches snapshots and decides what each
 * subscriber is owed): it gives a subscriber its SubscriberBackfill, and sends what that has
 * ready — events framed by the subscriber's wire, status messages as control frames — before
 * the subscriber reads on from its position. Backfill output has no place in the buffer, so
 * sending it leaves the position where it is; the sink's high-water mark stops it as it stops a
 * replay, and drain resumes it.
 */
export class BackfillFeed {
  constructor(
    readonly context: BackfillContext,
    /** The stream's tip: where a live subscriber has examined up to. */
    readonly tip: () => number,
  ) {}

  /**
   * Starts a backfill of each wanted repo the subscriber has not had backfilled yet.
   * `onOutput` runs when a backfill has something to send (the hub makes sure it is sent).
   */
  start(subscriber: Subscriber, onOutput: () => void): void {
    subscriber.backfill ??= new SubscriberBackfill(
      this.context,
      (entry) => wantsEvent(subscriber.filter, entry) && !isTooLarge(subscriber.filter, entry),
      onOutput,
      () => (subscriber.mode === 'live' ? this.tip() : subscriber.position),
      subscriber.id,
    );
    subscriber.backfill.request(subscriber.filter.dids, subscriber.mode === 'live' ? this.tip() : subscriber.position);
  }
}

/** Whether the subscriber's backfills hold the event back (its repo is being fetched, or the snapshot has it). */
export function withheld(subscriber: Subscriber, entry: Entry): boolean {
  return subscriber.backfill?.withholds(entry) ?? false;
}

/**
 * Sends up to one batch of what the subscriber's backfills have ready: 'full' if its sink's
 * buffer passed highWaterBytes first. The position does not move.
 */
export function sendBackfillOutput(subscriber: Subscriber, highWaterBytes: number, nowMs: number): 'all' | 'full' {
  const { backfill, wire, tally, sink } = subscriber;
  if (!backfill) return 'all';
  const batch = backfill.peek(subscriber.position, OUTPUT_BATCH);
  let sent = 0;
  let full = false;
  sink.cork(() => {
    for (const item of batch) {
      const { bytes, binary } = Buffer.isBuffer(item) ? wire.control(item) : { bytes: wire.frame(item), binary: wire.zstd };
      sink.send(bytes, binary);
      tally.events++;
      tally.bytes += bytes.byteLength;
      sent++;
      if ((full = sink.bufferedAmount() > highWaterBytes)) return;
    }
  });
  subscriber.lastSentMs = nowMs;
  backfill.consume(sent);
  return full ? 'full' : 'all';
}
