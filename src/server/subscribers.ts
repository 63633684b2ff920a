import type { Entry } from '../events/index.ts';
import { BackfillFeed, sendBackfillOutput, withheld } from './backfill-feed.ts';
import { readClientMessage } from './client-message.ts';
import { CLOSE, type CloseReason } from './close-reasons.ts';
import type { SubscriberFilter } from './filter.ts';
import { withHubDefaults, type HubSettings, type SubscriberHubOptions } from './hub-options.ts';
import { LiveIndex } from './live-index.ts';
import { readReplayBatch } from './replay-read.ts';
import { ReplayTurns } from './replay-turns.ts';
import { Roster } from './roster.ts';
import { FELL_BEHIND } from './slow-consumer.ts';
import { Subscriber, type Admission } from './subscriber.ts';
import type { SubscriberSink } from './transport.ts';
import { Watchdog } from './watchdog.ts';

/**
 * Every subscriber has one position and one way to move it (the README's Design, invariant 4):
 * the pump reads the events after it that its filter wants — from the hot log or LMDB — and
 * sends them until it reaches the tip; there it joins the live index, and publishing pushes each
 * committed batch straight to it (a shortcut of the same loop: a live subscriber has examined
 * everything up to the tip). Past the sink's high-water mark it leaves the index and pumps again
 * on drain from the last event sent. Each step runs synchronously between commits, so the switch
 * to live has no seam. Live sends run as commits land; replays take turns (replay-turns.ts).
 */
export class SubscriberHub {
  readonly #options: HubSettings;
  readonly #backfill: BackfillFeed | undefined;
  readonly #live = new LiveIndex<Subscriber>();
  readonly #roster = new Roster();
  readonly #watchdog: Watchdog;
  readonly #replays: ReplayTurns<Subscriber>;
  readonly #countTooLarge = () => this.#options.metrics.tooLarge++;

  constructor(options: SubscriberHubOptions) {
    this.#options = withHubDefaults(options);
    this.#backfill = options.backfill && new BackfillFeed(options.backfill, () => options.store.hotLog.newest);
    options.store.onCommitted((entries) => this.#publish(entries));
    this.#replays = new ReplayTurns((subscriber) => this.#replayStep(subscriber), this.#options.pumpSliceMs);
    this.#watchdog = new Watchdog({
      ...this.#options,
      subscribers: this.#roster,
      end: (subscriber, metricReason, close) => this.#end(subscriber, metricReason, close),
    });
  }

  // Who is connected: see roster.ts.
  get size(): number { return this.#roster.size; }
  get deflating(): number { return this.#roster.deflating; }
  connectionsFrom(address: string): number { return this.#roster.connectionsFrom(address); }
  counts(): ReturnType<Roster['counts']> { return this.#roster.counts(); }
  get backfillAvailable(): boolean { return this.#backfill !== undefined; }

  open(admission: Admission, sink: SubscriberSink): Subscriber {
    const subscriber = new Subscriber(admission, sink, this.#options.metrics, this.#options.nowMs());
    this.#roster.add(subscriber);
    this.#watchdog.watch(subscriber);
    subscriber.greet(admission.greeting);
    if (admission.backfill) this.#startBackfill(subscriber);
    this.#pump(subscriber);
    return subscriber;
  }

  /** A text or binary message from the client. */
  message(subscriber: Subscriber, data: Uint8Array, binary: boolean): void {
    if (subscriber.mode === 'closed') return;
    const request = readClientMessage(data, binary, subscriber.wire.name, subscriber.filter, this.backfillAvailable);
    if (request.kind === 'close') this.#end(subscriber, request.close.metric, request.close);
    else if (request.kind === 'filter') this.#refilter(subscriber, request.filter, request.backfill);
  }

  drain(subscriber: Subscriber): void {
    if (subscriber.mode !== 'blocked' || subscriber.sink.bufferedAmount() > this.#options.highWaterBytes / 2) return;
    subscriber.mode = 'replay';
    this.#pump(subscriber);
  }

  pong(subscriber: Subscriber): void { subscriber.awaitingPong = false; }

  /** The socket or HTTP stream is gone (closed by either side). */
  closed(subscriber: Subscriber, reason = 'client_closed'): void {
    if (subscriber.mode === 'closed') return;
    if (subscriber.mode === 'live') this.#live.remove(subscriber);
    subscriber.mode = 'closed';
    subscriber.backfill?.close();
    this.#watchdog.forget(subscriber);
    if (this.#roster.delete(subscriber)) this.#options.metrics.disconnects.inc({ reason });
  }

  /** Ends every subscriber's stream (shutdown: 1001 Going Away). */
  closeAll(close: CloseReason = CLOSE.shutdown): void {
    for (const subscriber of [...this.#roster]) this.#end(subscriber, close.metric, close);
  }

  stop(): void { this.#watchdog.stop(); }

  #refilter(subscriber: Subscriber, filter: SubscriberFilter, backfill: boolean): void {
    if (subscriber.mode === 'live') this.#live.remove(subscriber);
    subscriber.filter = filter;
    if (subscriber.mode === 'live') this.#live.add(subscriber);
    subscriber.backfill?.retain(filter.dids);
    if (backfill) this.#startBackfill(subscriber);
    if (subscriber.mode !== 'hello') return;
    subscriber.mode = 'replay';
    this.#watchdog.startWindow(subscriber);
    this.#pump(subscriber);
  }

  #startBackfill(subscriber: Subscriber): void {
    this.#backfill?.start(subscriber, () => this.#backfillReady(subscriber));
  }

  /**
   * A backfill has output for the subscriber. Replay steps send it first; a live subscriber
   * leaves the live index to replay from the tip (what it has examined), so it is sent now.
   * A blocked one gets it on drain, one waiting for its hello after the hello.
   */
  #backfillReady(subscriber: Subscriber): void {
    if (subscriber.mode !== 'live') return;
    this.#live.remove(subscriber);
    subscriber.position = this.#options.store.hotLog.newest;
    subscriber.mode = 'replay';
    this.#watchdog.startWindow(subscriber);
    this.#pump(subscriber);
  }

  #pump(subscriber: Subscriber): void {
    if (subscriber.mode === 'replay') this.#replays.queue(subscriber);
  }

  /** One read and send; true while the subscriber is still replaying (not live, blocked or gone). */
  #replayStep(subscriber: Subscriber): boolean {
    if (subscriber.mode !== 'replay') return false;
    const { store } = this.#options;
    if (subscriber.position < store.trimmedUpTo) {
      this.#watchdog.tooSlow(subscriber, FELL_BEHIND);
      return false;
    }
    if (subscriber.backfill?.hasOutput) {
      if (sendBackfillOutput(subscriber, this.#options.highWaterBytes, this.#options.nowMs()) === 'full') {
        subscriber.mode = 'blocked';
        return false;
      }
      // Backfill output does not move the position: its progress starts a new slow-consumer window.
      this.#watchdog.startWindow(subscriber);
      return true;
    }
    const { entries, position } = readReplayBatch(store, subscriber.position, subscriber.filter, this.#countTooLarge, subscriber.backfill && ((entry) => withheld(subscriber, entry)));
    const sent = entries.length > 0 ? this.#send(subscriber, entries) : 'all';
    if (sent === 'limit') return false;
    if (sent === 'full') {
      subscriber.mode = 'blocked';
      return false;
    }
    subscriber.position = position;
    if (position < store.hotLog.newest) return true;
    subscriber.mode = 'live';
    this.#live.add(subscriber);
    return false;
  }

  /** Subscriber.send, ending the stream cleanly once its `limit` is reached. */
  #send(subscriber: Subscriber, entries: readonly Entry[]): 'all' | 'full' | 'limit' {
    const sent = subscriber.send(entries, this.#options.highWaterBytes, this.#options.nowMs());
    if (sent === 'limit') this.#end(subscriber, CLOSE.limitReached.metric, CLOSE.limitReached);
    return sent;
  }

  #publish(entries: readonly Entry[]): void {
    const first = entries[0];
    if (this.#live.size === 0 || first === undefined) return;
    const before = first.timeUs - 1;
    for (const [subscriber, wanted] of this.#live.batches(entries, this.#countTooLarge)) {
      const batch = subscriber.backfill ? wanted.filter((entry) => !withheld(subscriber, entry)) : wanted;
      if (batch.length === 0) continue;
      subscriber.position = before;
      if (this.#send(subscriber, batch) !== 'full') continue;
      this.#live.remove(subscriber);
      subscriber.mode = 'blocked';
      this.#watchdog.startWindow(subscriber);
    }
  }

  /** Ends a subscriber's stream with `close`, or without a goodbye (see Subscriber.hangUp). */
  #end(subscriber: Subscriber, metricReason: string, close?: CloseReason): void {
    this.closed(subscriber, metricReason);
    subscriber.hangUp(close);
  }
}
