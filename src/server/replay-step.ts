import type { BackfillFeed } from './backfill-feed.ts';
import type { HubHooks } from './hub-options.ts';
import { ReplayReads, type ReplayBatch } from './replay-reads.ts';
import { FELL_BEHIND } from './slow-consumer.ts';
import type { Subscriber } from './subscriber.ts';
import type { Watchdog } from './watchdog.ts';

/**
 * One step of a subscriber's replay, run in its replay turn (replay-turns.ts): its backfills'
 * output first (backfill-feed.ts), otherwise its next batch (replay-reads.ts), sent while its
 * sink is under the high-water mark. The step that reaches the tip joins the live index; it
 * reads the hot log on this thread, between commits, so the handover has no seam. A position
 * retention has trimmed past ends the stream with ConsumerTooSlow: those events are gone.
 */
export class Replayer {
  readonly #reads: ReplayReads;

  /** @param wake queues a subscriber for its next step (a worker's read came back, or failed). */
  constructor(
    private readonly hub: HubHooks,
    private readonly watchdog: Pick<Watchdog, 'tooSlow'>,
    private readonly backfill: BackfillFeed | undefined,
    wake: (subscriber: Subscriber) => void,
  ) {
    this.#reads = new ReplayReads(hub.store, hub.replayPool, wake, (count) => (hub.metrics.tooLarge += count));
  }

  /** One read and send; true while the subscriber is still replaying (not live, blocked or gone). */
  step(subscriber: Subscriber): boolean {
    if (subscriber.mode !== 'replay') return false;
    const { store } = this.hub;
    if (subscriber.position < store.trimmedUpTo) {
      this.watchdog.tooSlow(subscriber, FELL_BEHIND);
      return false;
    }
    const backfilling = this.backfill?.replayStep(subscriber);
    if (backfilling !== undefined) return backfilling;
    const batch = this.#reads.next(subscriber);
    if (batch === 'reading') return false;
    if (batch === 'trimmed') {
      this.watchdog.tooSlow(subscriber, FELL_BEHIND);
      return false;
    }
    const sent = this.#sendBatch(subscriber, batch);
    if (sent !== 'all') {
      if (sent === 'full') subscriber.mode = 'blocked';
      return false;
    }
    this.#reads.finished(subscriber);
    subscriber.position = batch.position;
    if (subscriber.position < store.hotLog.newest) return true;
    subscriber.mode = 'live';
    this.hub.live.add(subscriber);
    return false;
  }

  /** Forgets what was read for the subscriber (it left, or replays from another position). */
  forget(subscriber: Subscriber): void {
    this.#reads.reset(subscriber);
  }

  /** What remains of a replay batch, while the subscriber's sink is under its high-water mark. */
  #sendBatch(subscriber: Subscriber, batch: ReplayBatch): 'all' | 'full' | 'limit' {
    if (subscriber.sink.bufferedAmount() > this.hub.highWaterBytes) return 'full';
    const { entries, frames } = this.#reads.unsent(subscriber, batch);
    return entries.length > 0 ? this.hub.send(subscriber, entries, frames) : 'all';
  }
}
