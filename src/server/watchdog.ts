import type { Logger } from 'pino';
import type { EventStore } from '../store/index.ts';
import { CLOSE, type CloseReason } from './close-reasons.ts';
import { judgeDrain } from './slow-consumer.ts';
import type { Subscriber } from './subscriber.ts';

export interface WatchdogOptions {
  subscribers: Iterable<Subscriber>;
  logger: Logger;
  slowWindowMs: number;
  pingIntervalMs: number;
  /** How often to look for subscribers due a heartbeat. */
  heartbeatTickMs: number;
  /** The clock slow-consumer windows and heartbeats are measured on (ms). */
  nowMs: () => number;
  /** Where the stream's tip (hotLog.newest) and the retention floor are, read at each check. */
  store: Pick<EventStore, 'hotLog' | 'trimmedUpTo'>;
  /** Ends a subscriber's stream: with `close`, or (undefined) by dropping the connection. */
  end: (subscriber: Subscriber, metricReason: string, close?: CloseReason) => void;
}

/**
 * The hub's timers. They end connections nobody is served well by keeping — subscribers behind
 * the tip that drain too slowly to catch up (judged by slow-consumer.ts, told why with
 * ConsumerTooSlow before the close) and peers that stopped answering pings — and send the
 * opt-in heartbeats.
 */
export class Watchdog {
  readonly #options: WatchdogOptions;
  readonly #timers: NodeJS.Timeout[];
  readonly #withHeartbeat = new Set<Subscriber>();
  #pingCheck: NodeJS.Immediate | undefined;

  constructor(options: WatchdogOptions) {
    this.#options = options;
    this.#timers = [
      setInterval(() => this.#checkDrains(), Math.max(50, options.slowWindowMs / 6)),
      // Judged after the event loop's next read of the sockets (setImmediate runs after it): when the
      // gateway's own loop stalled past the deadline, the peers' pongs wait unread on their sockets.
      setInterval(() => (this.#pingCheck = setImmediate(() => this.#pingAll())), options.pingIntervalMs),
      setInterval(() => this.#sendHeartbeats(), options.heartbeatTickMs),
    ];
    for (const timer of this.#timers) timer.unref();
  }

  /** A new subscriber: its first slow-consumer window starts, and its heartbeats if it asked. */
  watch(subscriber: Subscriber): void {
    this.startWindow(subscriber);
    if (subscriber.heartbeatMs > 0) this.#withHeartbeat.add(subscriber);
  }

  forget(subscriber: Subscriber): void {
    this.#withHeartbeat.delete(subscriber);
  }

  /** Starts a new slow-consumer window at the subscriber's position and the current tip. */
  startWindow(subscriber: Subscriber): void {
    subscriber.window = { atMs: this.#options.nowMs(), position: subscriber.position, tip: this.#options.store.hotLog.newest };
  }

  tooSlow(subscriber: Subscriber, message: string): void {
    this.#options.logger.info({ subscriber: subscriber.id, remoteAddress: subscriber.remoteAddress, message }, 'dropping a slow consumer');
    subscriber.sendError('ConsumerTooSlow', message);
    const close = CLOSE.tooSlow(message);
    this.#options.end(subscriber, close.metric, close);
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    clearImmediate(this.#pingCheck);
  }

  #checkDrains(): void {
    const { subscribers, slowWindowMs, nowMs, store } = this.#options;
    const now = { nowMs: nowMs(), tip: store.hotLog.newest, trimmedUpTo: store.trimmedUpTo };
    for (const subscriber of subscribers) {
      // One following the oldest event is moved on by its next read, not dropped (replay-reads.ts).
      if ((subscriber.mode !== 'replay' && subscriber.mode !== 'blocked') || subscriber.followsOldest) continue;
      const verdict = judgeDrain(subscriber.window, { ...now, position: subscriber.position }, slowWindowMs);
      if (verdict.kind === 'drop') this.tooSlow(subscriber, verdict.message);
      else if (verdict.kind === 'new_window') this.startWindow(subscriber);
    }
  }

  #pingAll(): void {
    for (const subscriber of this.#options.subscribers) {
      const { sink } = subscriber;
      // HTTP streams have no pings; a blocked socket's ping waits behind its backlog (the slow-consumer rule covers it).
      if (!sink.ping || subscriber.mode === 'blocked') continue;
      if (subscriber.awaitingPong) {
        this.#options.logger.info({ subscriber: subscriber.id }, 'subscriber did not answer a ping; dropping it');
        this.#options.end(subscriber, 'ping_timeout');
        continue;
      }
      subscriber.awaitingPong = true;
      sink.ping();
    }
  }

  /**
   * A heartbeat goes to a subscriber that asked for one and was sent nothing for its interval.
   * Its time_us resumes right after everything this subscriber has examined: nothing missed,
   * nothing repeated. A blocked subscriber has messages queued, so none is due; nor is one to a
   * subscriber whose backfill still owes it events its position passed (withheld during a fetch),
   * to one settling its cursor (its position is not known yet), to one waiting for its hello
   * (requireHello: nothing is sent before the first options_update), or to one still following
   * the oldest event (its position is not known yet either: a trim moves it on until its first
   * read is done, and a heartbeat would be something sent at a position it then leaves).
   */
  #sendHeartbeats(): void {
    const now = this.#options.nowMs();
    const tip = this.#options.store.hotLog.newest;
    for (const subscriber of this.#withHeartbeat) {
      if (!subscriber.wire.heartbeat || now - subscriber.lastSentMs < subscriber.heartbeatMs) continue;
      if (subscriber.mode === 'blocked' || subscriber.mode === 'settling' || subscriber.mode === 'hello' || subscriber.followsOldest) continue;
      if (subscriber.backfill?.owesEvents) continue;
      // A live subscriber has been sent every wanted event up to the tip (publish is synchronous).
      const resumeAt = (subscriber.mode === 'live' ? tip : subscriber.position) + 1;
      const { bytes, binary } = subscriber.wire.heartbeat(resumeAt);
      subscriber.sink.send(bytes, binary);
      subscriber.lastSentMs = now;
    }
  }
}
