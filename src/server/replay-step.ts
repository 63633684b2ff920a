import { DamagedBlockError, oldestOrUnreadable, UnreadableBufferError } from '../store/index.ts';
import type { BackfillFeed } from './backfill-feed.ts';
import { CLOSE } from './close-reasons.ts';
import type { HubHooks } from './hub-options.ts';
import { ReplayReads, type ReplayBatch } from './replay-reads.ts';
import { FELL_BEHIND } from './slow-consumer.ts';
import type { Subscriber } from './subscriber.ts';
import type { Watchdog } from './watchdog.ts';

/**
 * Events one step sends at most. A turn checks its time slice between steps (replay-turns.ts),
 * so a live commit waits behind the slice and one short step, never behind a whole batch (up
 * to 512 events, a few ms of socket writes on a busy machine).
 */
const EVENTS_PER_STEP = 64;

/**
 * One step of a subscriber's replay, run in its replay turn (replay-turns.ts): its backfills'
 * output first (backfill-feed.ts), otherwise its next batch (replay-reads.ts), sent while its
 * sink is under the high-water mark. The step that reaches the tip joins the live index; it
 * reads the hot log on this thread, between commits, so the handover has no seam. A position
 * retention has trimmed past ends the stream with ConsumerTooSlow: those events are gone;
 * unless the subscriber asked for the oldest event held and was sent nothing yet
 * (Subscriber.followsOldest): its next read starts at the oldest held then (replay-reads.ts). A
 * position whose next events are in a block that cannot be read (damaged on disk) ends the
 * stream with BufferDamaged, naming them and where to resume: sent on, the client would miss them
 * unawares. A read that fails otherwise (LMDB refuses a page damaged on disk), also that of the
 * oldest event a subscriber following it starts from, ends it with BufferUnreadable: nothing says
 * which events it would have got. Either ends only this stream:
 * other replays, the live path and ingest go on (the store renews the read transaction the
 * failure left unusable).
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
    this.#reads = new ReplayReads(hub.store, hub.replayPool, wake, (count) => (hub.metrics.tooLarge += count), () => hub.metrics.readsAhead++);
  }

  /** One read, or the next part of a batch read before, sent; true while the subscriber is still replaying (not live, blocked or gone). */
  step(subscriber: Subscriber): boolean {
    if (subscriber.mode !== 'replay') return false;
    const { store } = this.hub;
    if (subscriber.position < store.trimmedUpTo && !subscriber.followsOldest) {
      this.watchdog.tooSlow(subscriber, FELL_BEHIND);
      return false;
    }
    const backfilling = this.backfill?.replayStep(subscriber);
    if (backfilling !== undefined) {
      if (subscriber.followsOldest) {
        // It starts here, at the oldest held now: a read begun from an older oldest is dropped.
        this.#reads.reset(subscriber);
        subscriber.position = Math.max(subscriber.position, store.trimmedUpTo);
        const oldest = oldestOrUnreadable(store);
        if (oldest instanceof UnreadableBufferError) {
          this.#unreadable(subscriber, oldest);
          return false;
        }
        subscriber.startFromHere({ oldest });
      }
      return backfilling;
    }
    const batch = this.#reads.next(subscriber);
    if (batch === 'reading') return false;
    if (batch instanceof DamagedBlockError) {
      this.#damaged(subscriber, batch);
      return false;
    }
    if (batch instanceof UnreadableBufferError) {
      this.#unreadable(subscriber, batch);
      return false;
    }
    if (batch === 'trimmed') {
      this.watchdog.tooSlow(subscriber, FELL_BEHIND);
      return false;
    }
    const sent = this.#sendBatch(subscriber, batch);
    if (sent === 'more') return true;
    if (sent !== 'all') {
      if (sent === 'full') subscriber.mode = 'blocked';
      return false;
    }
    this.#reads.finished(subscriber);
    subscriber.startFromHere(batch.fromOldest);
    subscriber.position = batch.position;
    if (subscriber.position < store.hotLog.newest) return true;
    subscriber.mode = 'live';
    this.hub.live.add(subscriber);
    return false;
  }

  #unreadable(subscriber: Subscriber, failure: UnreadableBufferError): void {
    subscriber.sendError('BufferUnreadable', failure.message);
    const close = CLOSE.bufferUnreadable(failure.message);
    this.hub.end(subscriber, close.metric, close);
  }

  #damaged(subscriber: Subscriber, damage: DamagedBlockError): void {
    const message = `${damage.message}; a cursor above ${damage.end} resumes after them`;
    subscriber.sendError('BufferDamaged', message, damage.end + 1);
    const close = CLOSE.bufferDamaged(message);
    this.hub.end(subscriber, close.metric, close);
  }

  /** Forgets what was read for the subscriber (it left, or replays from another position). */
  forget(subscriber: Subscriber): void {
    this.#reads.reset(subscriber);
  }

  /** The next EVENTS_PER_STEP of what remains of a replay batch ('more' if some remain), while the subscriber's sink is under its high-water mark. */
  #sendBatch(subscriber: Subscriber, batch: ReplayBatch): 'all' | 'more' | 'full' | 'limit' {
    if (subscriber.sink.bufferedAmount() > this.hub.highWaterBytes) return 'full';
    const { entries, frames, from } = this.#reads.unsent(subscriber, batch);
    if (from === entries.length) return 'all';
    const to = Math.min(from + EVENTS_PER_STEP, entries.length);
    subscriber.startFromHere(batch.fromOldest);
    const sent = this.hub.send(subscriber, entries, frames, from, to);
    return sent === 'all' && to < entries.length ? 'more' : sent;
  }
}
