import type { Entry } from '../events/index.ts';
import { BackfillFeed, withheld } from './backfill-feed.ts';
import { CLOSE, type CloseReason } from './close-reasons.ts';
import { withHubDefaults, type HubHooks, type HubSettings, type SubscriberHubOptions } from './hub-options.ts';
import { LiveIndex } from './live-index.ts';
import { applyClientMessage } from './options-update.ts';
import { Replayer } from './replay-step.ts';
import { ReplayTurns } from './replay-turns.ts';
import { Roster } from './roster.ts';
import { XrpcError } from './subscribe-events.ts';
import { Subscriber, type Admission } from './subscriber.ts';
import type { SubscriberSink } from './transport.ts';
import { Watchdog } from './watchdog.ts';

/**
 * Every subscriber has one position and one way to move it (the README's Design, invariant 4):
 * the pump reads the events after it that its filter wants until it reaches the tip; there it
 * joins the live index, and publishing pushes each committed batch straight to it. Past the
 * sink's high-water mark it leaves the index and pumps again on drain. Each step runs between
 * commits, so the switch to live has no seam. Replays take turns (replay-turns.ts); each turn
 * runs a replay step (replay-step.ts).
 */
export class SubscriberHub {
  readonly #options: HubSettings;
  readonly #backfill: BackfillFeed | undefined;
  readonly #live = new LiveIndex<Subscriber>();
  readonly #roster = new Roster();
  readonly #watchdog: Watchdog;
  readonly #replays: ReplayTurns<Subscriber>;
  readonly #replayer: Replayer;
  readonly #hooks: HubHooks;

  constructor(options: SubscriberHubOptions) {
    this.#options = withHubDefaults(options);
    this.#hooks = {
      ...this.#options,
      subscribers: this.#roster,
      live: this.#live,
      end: (subscriber, metricReason, close) => this.#end(subscriber, metricReason, close),
      replayFrom: (subscriber, position) => this.#replayFrom(subscriber, position),
      startWindow: (subscriber) => this.#watchdog.startWindow(subscriber),
      send: (subscriber, entries, frames, from, to) => this.#send(subscriber, entries, frames, from, to),
    };
    this.#watchdog = new Watchdog(this.#hooks);
    this.#backfill = options.backfill && new BackfillFeed(options.backfill, this.#hooks);
    this.#replayer = new Replayer(this.#hooks, this.#watchdog, this.#backfill, (subscriber) => this.#pump(subscriber));
    this.#replays = new ReplayTurns((subscriber) => this.#replayer.step(subscriber), this.#options.pumpSliceMs, this.#options.commitDue);
    options.store.onCommitted((entries) => {
      this.#publish(entries);
      // The replays' slice, if it stepped aside for this commit, runs now: after its live sends, in this turn.
      this.#replays.liveDone();
    });
  }

  // Who is connected: see roster.ts.
  get size(): number { return this.#roster.size; }
  get deflating(): number { return this.#roster.deflating; }
  connectionsFrom(address: string): number { return this.#roster.connectionsFrom(address); }
  counts(): ReturnType<Roster['counts']> { return this.#roster.counts(); }
  get backfillAvailable(): boolean { return this.#backfill !== undefined; }
  /** Whether a cursor ahead of the buffer may name events this node has yet to apply (a cluster node): see #settle. */
  get settlesAheadCursors(): boolean { return this.#options.awaitClusterStreamEnd !== undefined; }

  open(admission: Admission, sink: SubscriberSink): Subscriber {
    const subscriber = new Subscriber(admission, sink, this.#options.metrics, this.#options.nowMs());
    this.#roster.add(subscriber);
    this.#watchdog.watch(subscriber);
    if (subscriber.mode === 'settling') {
      subscriber.greet(undefined);
      void this.#settle(subscriber, admission.resolveAhead!);
      return subscriber;
    }
    subscriber.greet(admission.greeting);
    this.#begin(subscriber);
    return subscriber;
  }

  /** A text or binary message from the client: see options-update.ts. */
  message(subscriber: Subscriber, data: Uint8Array, binary: boolean): void {
    applyClientMessage(this.#hooks, this.#backfill, subscriber, data, binary);
  }

  /**
   * A blocked subscriber resumes once its sink has written out all it held, not before: uWS
   * compacts a socket's send buffer only when it empties (or after 1 MiB left it) and keeps the
   * buffer's memory at its peak for the socket's lifetime, so topping up a half-drained buffer
   * would let each subscriber keep up to 1 MiB beyond the high-water mark.
   */
  drain(subscriber: Subscriber): void {
    if (subscriber.mode !== 'blocked' || subscriber.sink.bufferedAmount() > 0) return;
    subscriber.mode = 'replay';
    this.#pump(subscriber);
  }

  pong(subscriber: Subscriber): void { subscriber.awaitingPong = false; }

  /** The socket or HTTP stream is gone (closed by either side). */
  closed(subscriber: Subscriber, reason = 'client_closed'): void {
    if (subscriber.mode === 'closed') return;
    if (subscriber.mode === 'live') this.#live.remove(subscriber);
    subscriber.mode = 'closed';
    this.#replayer.forget(subscriber);
    subscriber.backfill?.close();
    this.#watchdog.forget(subscriber);
    if (this.#roster.delete(subscriber)) this.#options.metrics.disconnects.inc({ reason });
  }

  /**
   * The transport cut a stream whose reader had stopped taking bytes (uWS's HTTP idle timeout, which
   * comes before the slow-consumer window): a slow consumer, counted and logged as the watchdog's are.
   */
  cutStalled(subscriber: Subscriber): void {
    if (subscriber.mode === 'closed') return;
    this.#options.logger.info(
      { subscriber: subscriber.id, remoteAddress: subscriber.remoteAddress },
      'a slow consumer was cut by the transport: its HTTP stream took nothing for the idle timeout',
    );
    this.closed(subscriber, 'consumer_too_slow');
  }

  /** Ends every subscriber's stream (shutdown: 1001 Going Away). */
  closeAll(close: CloseReason = CLOSE.shutdown): void {
    for (const subscriber of [...this.#roster]) this.#end(subscriber, close.metric, close);
  }

  stop(): void { this.#watchdog.stop(); }

  #begin(subscriber: Subscriber): void {
    if (subscriber.backfillDue) this.#backfill?.start(subscriber);
    subscriber.backfillDue = false;
    this.#pump(subscriber);
  }

  /**
   * A cursor past this cluster node's newest event is either one another node gave out for events
   * this node has not applied yet (it lags by a batch or more), or a future one. Taken for a
   * future cursor at once, as a single process does, the first would start at this node's tip and
   * send the lagging events before the cursor again. So the subscriber waits until this node
   * holds everything the stream held at connect — which includes every event any node had served
   * by then — and the cursor is resolved again: now it is in the buffer, or it is truly ahead.
   */
  async #settle(subscriber: Subscriber, resolveAhead: NonNullable<Admission['resolveAhead']>): Promise<void> {
    await this.#options.awaitClusterStreamEnd!(() => subscriber.mode === 'settling');
    if (subscriber.mode !== 'settling') return;
    let resolved: ReturnType<typeof resolveAhead>;
    try {
      resolved = resolveAhead();
    } catch (err) {
      // Retention passed a v2 seq cursor while the node caught up, or LMDB refused its look-up (a
      // page damaged on disk): said in an error frame before the close, as ConsumerTooSlow is (a
      // client reads why from its stream, not only the close).
      const { message } = err as Error;
      const unreadable = err instanceof XrpcError && err.error === 'BufferUnreadable';
      subscriber.sendError(unreadable ? 'BufferUnreadable' : 'CursorTooOld', message);
      const close = unreadable ? CLOSE.bufferUnreadable(message) : CLOSE.cursorTooOld(message);
      return this.#end(subscriber, close.metric, close);
    }
    subscriber.position = resolved.position;
    subscriber.mode = subscriber.helloDue ? 'hello' : 'replay';
    // Its reading starts now: the window begun at connect spans the settle, in which it was sent nothing.
    this.#watchdog.startWindow(subscriber);
    if (resolved.greeting) subscriber.sendControl(resolved.greeting());
    this.#begin(subscriber);
  }

  /** Replays from `position` in a new slow-consumer window (a live subscriber leaves the live index). */
  #replayFrom(subscriber: Subscriber, position: number): void {
    if (subscriber.mode === 'live') this.#live.remove(subscriber);
    this.#replayer.forget(subscriber);
    subscriber.position = position;
    subscriber.mode = 'replay';
    this.#watchdog.startWindow(subscriber);
    this.#pump(subscriber);
  }

  #pump(subscriber: Subscriber): void {
    if (subscriber.mode === 'replay') this.#replays.queue(subscriber);
  }

  /** Subscriber.send, ending the stream cleanly once its `limit` is reached. */
  #send(subscriber: Subscriber, entries: readonly Entry[], frames?: readonly Uint8Array[], from?: number, to?: number): 'all' | 'full' | 'limit' {
    const sent = subscriber.send(entries, this.#options.highWaterBytes, this.#options.nowMs(), frames, from, to);
    if (sent === 'limit') this.#end(subscriber, CLOSE.limitReached.metric, CLOSE.limitReached);
    return sent;
  }

  #publish(entries: readonly Entry[]): void {
    const first = entries[0];
    if (this.#live.size === 0 || first === undefined) return;
    const before = first.timeUs - 1;
    /** Each subscriber's wanted events over its size limit (their time_us), counted once its send is done. */
    let tooLarge: Map<Subscriber, number[]> | undefined;
    const batches = this.#live.batches(entries, (subscriber, entry) => {
      tooLarge ??= new Map();
      const times = tooLarge.get(subscriber);
      if (times) times.push(entry.timeUs);
      else tooLarge.set(subscriber, [entry.timeUs]);
    });
    /** Subscribers whose send stopped partway through the batch (full, or at its limit). */
    const stopped = new Set<Subscriber>();
    for (const [subscriber, wanted] of batches) {
      const batch = subscriber.backfill ? wanted.filter((entry) => !withheld(subscriber, entry)) : wanted;
      if (batch.length === 0) continue;
      subscriber.position = before;
      const sent = this.#send(subscriber, batch);
      if (sent !== 'all') stopped.add(subscriber);
      if (sent !== 'full') continue;
      this.#live.remove(subscriber);
      subscriber.mode = 'blocked';
      this.#watchdog.startWindow(subscriber);
    }
    if (tooLarge) this.#countTooLarge(tooLarge, stopped);
  }

  /**
   * Counts the events over a subscriber's size limit in a published batch; for one whose send
   * stopped partway, only those up to where it stopped: it reads the rest from the buffer again
   * once it drains, and that read counts them (or its stream ended at its limit, before them).
   */
  #countTooLarge(tooLarge: Map<Subscriber, number[]>, stopped: Set<Subscriber>): void {
    const { metrics } = this.#options;
    for (const [subscriber, times] of tooLarge) {
      if (!stopped.has(subscriber)) metrics.tooLarge += times.length;
      else for (const timeUs of times) if (timeUs <= subscriber.position) metrics.tooLarge++;
    }
  }

  /** Ends a subscriber's stream with `close`, or without a goodbye (see Subscriber.hangUp). */
  #end(subscriber: Subscriber, metricReason: string, close?: CloseReason): void {
    this.closed(subscriber, metricReason);
    subscriber.hangUp(close);
  }
}
