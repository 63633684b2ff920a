import { MAX_BACKFILL_DIDS, SubscriberBackfill, type BackfillContext } from '../backfill/index.ts';
import type { Entry } from '../events/index.ts';
import { isTooLarge, OptionError, wantsEvent, type SubscriberFilter } from './filter.ts';
import type { HubHooks } from './hub-options.ts';
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
 * subscriber is owed): it gives a subscriber its SubscriberBackfill, and in the subscriber's
 * replay steps sends what that has ready — events framed by the subscriber's wire, status
 * messages as control frames — before the subscriber reads on from its position. Backfill
 * output has no place in the buffer, so sending it leaves the position where it is; the sink's
 * high-water mark stops it as it stops a replay, and drain resumes it.
 */
export class BackfillFeed {
  constructor(
    readonly context: BackfillContext,
    readonly hub: HubHooks,
  ) {}

  /** Starts a backfill of each wanted repo the subscriber has not had backfilled yet. */
  start(subscriber: Subscriber): void {
    // A live subscriber has examined everything up to the tip.
    const examined = () => (subscriber.mode === 'live' ? this.hub.store.hotLog.newest : subscriber.position);
    subscriber.backfill ??= new SubscriberBackfill(
      this.context,
      (entry) => wantsEvent(subscriber.filter, entry) && !isTooLarge(subscriber.filter, entry),
      () => this.#outputReady(subscriber),
      examined,
      subscriber.id,
    );
    subscriber.backfill.request(subscriber.filter.dids, examined());
  }

  /**
   * One replay step's backfill output: undefined when there is none (the step reads the store);
   * otherwise whether the subscriber goes on replaying — false once its sink is full (it is
   * then blocked until drain).
   */
  replayStep(subscriber: Subscriber): boolean | undefined {
    if (!subscriber.backfill?.hasOutput) return undefined;
    if (sendBackfillOutput(subscriber, this.hub.highWaterBytes, this.hub.nowMs()) === 'full') {
      subscriber.mode = 'blocked';
      return false;
    }
    // Backfill output does not move the position: its progress starts a new slow-consumer window.
    this.hub.startWindow(subscriber);
    return true;
  }

  /**
   * A backfill has output for the subscriber. Replay steps send it first; a live subscriber
   * replays from the tip, so it is sent now. A blocked one gets it on drain, one waiting for
   * its hello after the hello.
   */
  #outputReady(subscriber: Subscriber): void {
    if (subscriber.mode === 'live') this.hub.replayFrom(subscriber, this.hub.store.hotLog.newest);
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
function sendBackfillOutput(subscriber: Subscriber, highWaterBytes: number, nowMs: number): 'all' | 'full' {
  const { backfill, wire, tally, sink } = subscriber;
  if (!backfill) return 'all';
  const batch = backfill.peek(subscriber.position, OUTPUT_BATCH);
  let sent = 0;
  let full = false;
  sink.cork(() => {
    for (const item of batch) {
      const { bytes, binary } = Buffer.isBuffer(item) ? wire.control(item) : { bytes: (wire.replayFrame ?? wire.frame)(item), binary: wire.zstd };
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
