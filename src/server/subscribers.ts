import type { Logger } from 'pino';
import type { Entry } from '../events/index.ts';
import type { EventStore } from '../store/index.ts';
import { readClientMessage } from './client-message.ts';
import { CLOSE, truncateReason, type CloseReason } from './close-reasons.ts';
import { isTooLarge, wantsEvent, type SubscriberFilter } from './filter.ts';
import { LiveIndex } from './live-index.ts';
import type { ServerMetrics } from './metrics.ts';
import { Roster } from './roster.ts';
import { FELL_BEHIND } from './slow-consumer.ts';
import { compressionOf, Subscriber, type Admission } from './subscriber.ts';
import type { SubscriberSink } from './transport.ts';
import { Watchdog } from './watchdog.ts';

export interface SubscriberHubOptions {
  store: EventStore;
  logger: Logger;
  metrics: ServerMetrics;
  /** Stop pushing to a subscriber once this many bytes wait in its sink's send buffer. */
  highWaterBytes?: number;
  /** A subscriber behind the tip for this long, draining at under half the stream's rate, is dropped. */
  slowWindowMs?: number;
  pingIntervalMs?: number;
  /** How often to look for subscribers due a heartbeat. */
  heartbeatTickMs?: number;
  /**
   * How long replays together may run in one turn of the event loop before yielding, so live
   * sends (and ingest) never wait longer than this behind them, however many clients replay.
   */
  pumpSliceMs?: number;
  /** The clock slow-consumer windows and heartbeats are measured on (ms). */
  nowMs?: () => number;
}

const READ_BATCH = 512;
/** Bounds one read's time (a few ms) when the filter matches little of what is read. */
const READ_SCAN_LIMIT = 10_000;

/**
 * Every subscriber has one position and one way to move it (the README's Design, invariant 4):
 * the pump reads "events after my position that match my filter" from the store — the hot log
 * when the position is recent, LMDB otherwise — and sends them, until it reaches the tip. There
 * it joins the live index, and publish() pushes each newly committed batch straight to it: a
 * shortcut of the same loop, valid because a live subscriber has examined everything up to the
 * tip. When a sink's send buffer passes the high-water mark the subscriber leaves the index,
 * remembers the last event it was sent, and on drain pumps again from there. Each pump step
 * (one read, one send) runs synchronously between commits, so the switch to live has no seam.
 * Live sends come first: they run as commits land, while replays share one bounded slice per
 * event-loop turn, taking turns (see #pump).
 */
export class SubscriberHub {
  readonly #options: Required<SubscriberHubOptions>;
  readonly #live = new LiveIndex<Subscriber>();
  readonly #roster = new Roster();
  readonly #watchdog: Watchdog;
  /** Subscribers waiting for their next replay step, in turn order. */
  readonly #replaying = new Set<Subscriber>();
  #replayScheduled = false;
  #nextId = 1;

  constructor(options: SubscriberHubOptions) {
    // `??` rather than spreading defaults: a knob passed as undefined keeps its default.
    this.#options = {
      ...options,
      highWaterBytes: options.highWaterBytes ?? 1024 * 1024,
      slowWindowMs: options.slowWindowMs ?? 60_000,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      heartbeatTickMs: options.heartbeatTickMs ?? 250,
      pumpSliceMs: options.pumpSliceMs ?? 3,
      nowMs: options.nowMs ?? Date.now,
    };
    const { store } = options;
    store.onCommitted((entries) => this.#publish(entries));
    this.#watchdog = new Watchdog({
      ...this.#options,
      subscribers: this.#roster,
      tip: () => store.hotLog.newest,
      trimmedUpTo: () => store.trimmedUpTo,
      end: (subscriber, metricReason, close) => this.#end(subscriber, metricReason, close),
    });
  }

  // Who is connected: see roster.ts.
  get size(): number { return this.#roster.size; }
  get deflating(): number { return this.#roster.deflating; }
  connectionsFrom(address: string): number { return this.#roster.connectionsFrom(address); }
  counts(): ReturnType<Roster['counts']> { return this.#roster.counts(); }

  open(admission: Admission, sink: SubscriberSink): Subscriber {
    const tally = this.#options.metrics.tally(admission.wire.name, compressionOf(admission));
    const subscriber = new Subscriber(this.#nextId++, admission, sink, tally, this.#options.nowMs());
    this.#roster.add(subscriber);
    this.#watchdog.watch(subscriber);
    if (subscriber.wire.prelude) sink.send(subscriber.wire.prelude, false);
    if (admission.greeting) {
      const { bytes, binary } = subscriber.wire.control(admission.greeting);
      sink.send(bytes, binary);
    }
    this.#pump(subscriber);
    return subscriber;
  }

  /** A text or binary message from the client. */
  message(subscriber: Subscriber, data: Uint8Array, binary: boolean): void {
    if (subscriber.mode === 'closed') return;
    const request = readClientMessage(data, binary, subscriber.wire.name, subscriber.filter);
    if (request.kind === 'close') this.#end(subscriber, request.close.metric, request.close);
    else if (request.kind === 'filter') this.#refilter(subscriber, request.filter);
  }

  drain(subscriber: Subscriber): void {
    if (subscriber.mode !== 'blocked' || subscriber.sink.bufferedAmount() > this.#options.highWaterBytes / 2) return;
    subscriber.mode = 'replay';
    this.#pump(subscriber);
  }

  pong(subscriber: Subscriber): void {
    subscriber.awaitingPong = false;
  }

  /** The socket or HTTP stream is gone (closed by either side). */
  closed(subscriber: Subscriber, reason = 'client_closed'): void {
    if (subscriber.mode === 'closed') return;
    if (subscriber.mode === 'live') this.#live.remove(subscriber);
    subscriber.mode = 'closed';
    this.#watchdog.forget(subscriber);
    if (this.#roster.delete(subscriber)) this.#options.metrics.disconnects.inc({ reason });
  }

  /** Ends every subscriber's stream (shutdown: 1001 Going Away). */
  closeAll(close: CloseReason = CLOSE.shutdown): void {
    for (const subscriber of [...this.#roster]) this.#end(subscriber, close.metric, close);
  }

  stop(): void {
    this.#watchdog.stop();
  }

  #refilter(subscriber: Subscriber, filter: SubscriberFilter): void {
    const live = subscriber.mode === 'live';
    if (live) this.#live.remove(subscriber);
    subscriber.filter = filter;
    if (live) this.#live.add(subscriber);
    if (subscriber.mode !== 'hello') return;
    subscriber.mode = 'replay';
    this.#watchdog.startWindow(subscriber);
    this.#pump(subscriber);
  }

  /**
   * Queues the subscriber for replay. Replays take turns (round robin) within one shared slice
   * per event-loop turn, so twenty replaying clients cost live clients one slice, not twenty.
   */
  #pump(subscriber: Subscriber): void {
    if (subscriber.mode !== 'replay' || this.#replaying.has(subscriber)) return;
    this.#replaying.add(subscriber);
    if (this.#replayScheduled) return;
    this.#replayScheduled = true;
    setImmediate(() => this.#runReplays());
  }

  #runReplays(): void {
    this.#replayScheduled = false;
    const deadline = performance.now() + this.#options.pumpSliceMs;
    while (this.#replaying.size > 0 && performance.now() < deadline) {
      for (const subscriber of this.#replaying) {
        this.#replaying.delete(subscriber);
        // Still replaying after this step: back to the end of the line.
        if (this.#replayStep(subscriber)) this.#replaying.add(subscriber);
        if (performance.now() >= deadline) break;
      }
    }
    if (this.#replaying.size > 0) {
      this.#replayScheduled = true;
      setImmediate(() => this.#runReplays());
    }
  }

  /** One read and send; true while the subscriber is still replaying (not live, blocked or gone). */
  #replayStep(subscriber: Subscriber): boolean {
    if (subscriber.mode !== 'replay') return false;
    const { store, metrics } = this.#options;
    if (subscriber.position < store.trimmedUpTo) {
      this.#watchdog.tooSlow(subscriber, FELL_BEHIND);
      return false;
    }
    const filter = (entry: Entry) => {
      if (!wantsEvent(subscriber.filter, entry)) return false;
      // Counted only for wanted events, as the live index does.
      if (!isTooLarge(subscriber.filter, entry)) return true;
      metrics.tooLarge++;
      return false;
    };
    const { entries, position } = store.readAfter(subscriber.position, { maxEntries: READ_BATCH, maxScanned: READ_SCAN_LIMIT, filter, select: subscriber.filter });
    const sent = entries.length > 0 ? this.#send(subscriber, entries) : 'all';
    if (sent === 'limit') return false;
    if (sent === 'full') {
      subscriber.mode = 'blocked';
      return false;
    }
    subscriber.position = position;
    if (position >= store.hotLog.newest) {
      subscriber.mode = 'live';
      this.#live.add(subscriber);
      return false;
    }
    return true;
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
    const { metrics } = this.#options;
    const before = first.timeUs - 1;
    for (const [subscriber, batch] of this.#live.batches(entries, () => metrics.tooLarge++)) {
      subscriber.position = before;
      if (this.#send(subscriber, batch) !== 'full') continue;
      this.#live.remove(subscriber);
      subscriber.mode = 'blocked';
      this.#watchdog.startWindow(subscriber);
    }
  }

  /**
   * Ends a subscriber's stream: with `close` (a wire without close frames — an HTTP stream —
   * first gets close.error as an error frame, so no stream ends without saying why), or without
   * a goodbye (a peer that stopped answering).
   */
  #end(subscriber: Subscriber, metricReason: string, close?: CloseReason): void {
    const { sink, wire } = subscriber;
    this.closed(subscriber, metricReason);
    if (!close) return sink.terminate();
    if (close.error && !wire.closeFrame) {
      const { bytes, binary } = wire.errorFrame(close.error, close.reason);
      sink.send(bytes, binary);
    }
    sink.close(close.code, truncateReason(close.reason));
  }
}
