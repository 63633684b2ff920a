import type { Logger } from 'pino';
import type { Entry } from '../events/index.ts';
import type { EventStore } from '../store/index.ts';
import { OptionError, isTooLarge, parseFilter, wantsEvent, type SubscriberFilter } from './filter.ts';
import { LiveIndex } from './live-index.ts';
import type { ServerMetrics, SentTally } from './metrics.ts';
import type { SubscriberSink } from './transport.ts';
import type { Wire } from './wire.ts';

export type SubscriberMode = 'hello' | 'replay' | 'blocked' | 'live' | 'closed';

export class Subscriber {
  sink: SubscriberSink | undefined;
  mode: SubscriberMode;
  /** Newest time_us examined for this subscriber (sent or filtered out). Stale while live: the tip is. */
  position: number;
  awaitingPong = false;
  /** Where the current slow-consumer window started. */
  window = { atMs: 0, position: 0, tip: 0 };
  readonly wire: Wire;
  /** Negotiated permessage-deflate (the transport compresses; the hub only counts). */
  readonly deflate: boolean;
  readonly remoteAddress: string;
  /** Sent before any event (a v2 #info about the cursor). */
  readonly greeting: Buffer | undefined;
  readonly tally: SentTally;
  /** Send a heartbeat after this long without a message; 0 = never. */
  readonly heartbeatMs: number;
  /** When the last message went out (for the heartbeat). */
  lastSentMs = 0;
  /** Events still to send before the stream ends by itself (`limit`); Infinity = no limit. */
  remaining: number;

  constructor(
    readonly id: number,
    public filter: SubscriberFilter,
    options: SubscriberOptions & { tally: SentTally },
  ) {
    this.wire = options.wire;
    this.deflate = options.deflate;
    this.remoteAddress = options.remoteAddress;
    this.greeting = options.greeting;
    this.tally = options.tally;
    this.position = options.position;
    this.mode = options.requireHello ? 'hello' : 'replay';
    this.heartbeatMs = options.heartbeatMs ?? 0;
    this.remaining = options.limit ?? Infinity;
  }

  /** zstd, deflate or none: the metrics label. */
  get compression(): 'zstd' | 'deflate' | 'none' {
    return this.wire.zstd ? 'zstd' : this.deflate ? 'deflate' : 'none';
  }
}

export interface SubscriberOptions {
  wire: Wire;
  deflate: boolean;
  /** The time_us after which its stream starts (see positionAtTime and subscribe-events.ts). */
  position: number;
  requireHello: boolean;
  remoteAddress: string;
  greeting?: Buffer;
  /** End the stream cleanly after this many events (the HTTP streams' `limit`). */
  limit?: number;
  /** Send a heartbeat after this long without a message (needs a wire with heartbeats). */
  heartbeatMs?: number;
}

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
  /** How long one pump may run before yielding to other work. */
  pumpSliceMs?: number;
}

const READ_BATCH = 512;
const READ_SCAN_LIMIT = 50_000;
const MIN_DRAIN_RATIO = 0.5;
const CLOSE_POLICY = 1008;
const FELL_BEHIND = 'fell behind the buffer: the events after your position were trimmed by retention';

/**
 * Every subscriber has one position and one way to move it (DESIGN.md invariant 4): the pump
 * reads "events after my position that match my filter" from the store — the hot log when the
 * position is recent, LMDB otherwise — and sends them, until it reaches the tip. There it joins
 * the live index, and publish() pushes each newly committed batch straight to it: a shortcut
 * of the same loop, valid because a live subscriber has examined everything up to the tip.
 * When a socket's send buffer passes the high-water mark the subscriber leaves the index,
 * remembers the last event it was sent, and on drain pumps again from there. Pumps run
 * synchronously between commits, so the switch to live has no seam.
 */
export class SubscriberHub {
  readonly #options: Required<SubscriberHubOptions>;
  readonly #live = new LiveIndex<Subscriber>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #withHeartbeat = new Set<Subscriber>();
  readonly #perAddress = new Map<string, number>();
  #deflating = 0;
  readonly #timers: NodeJS.Timeout[] = [];
  #nextId = 1;

  constructor(options: SubscriberHubOptions) {
    // `??` rather than spreading defaults: a knob passed as undefined keeps its default.
    this.#options = {
      ...options,
      highWaterBytes: options.highWaterBytes ?? 1024 * 1024,
      slowWindowMs: options.slowWindowMs ?? 60_000,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      heartbeatTickMs: options.heartbeatTickMs ?? 250,
      pumpSliceMs: options.pumpSliceMs ?? 5,
    };
    options.store.onCommitted((entries) => this.#publish(entries));
    const { slowWindowMs, pingIntervalMs, heartbeatTickMs } = this.#options;
    this.#timers.push(setInterval(() => this.#checkSlowConsumers(), Math.max(50, slowWindowMs / 6)));
    this.#timers.push(setInterval(() => this.#pingAll(), pingIntervalMs));
    this.#timers.push(setInterval(() => this.#sendHeartbeats(), heartbeatTickMs));
    for (const timer of this.#timers) timer.unref();
  }

  get size(): number {
    return this.#subscribers.size;
  }

  connectionsFrom(address: string): number {
    return this.#perAddress.get(address) ?? 0;
  }

  /** Subscribers with permessage-deflate negotiated (the operator caps how many). */
  get deflating(): number {
    return this.#deflating;
  }

  counts(): Array<{ wire: string; compression: string; mode: string; count: number }> {
    const tally = new Map<string, number>();
    for (const s of this.#subscribers) {
      const key = `${s.wire.name}|${s.compression}|${s.mode === 'blocked' ? 'replay' : s.mode}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    return [...tally].map(([key, count]) => {
      const [wire, compression, mode] = key.split('|');
      return { wire, compression, mode, count };
    });
  }

  /**
   * Where a time_us cursor (v1's) starts: absent or in the future = the tip; otherwise just
   * before the cursor (it is inclusive), but never below what retention has trimmed.
   * "The future" is after the last time_us issued, not after the wall clock: after the clock
   * steps back, a client resuming from a time_us it holds is still ahead of "now".
   */
  positionAtTime(cursor: number | undefined): number {
    const { store } = this.#options;
    return cursor === undefined || cursor > store.lastTimeUs ? store.hotLog.newest : Math.max(cursor - 1, store.trimmedUpTo);
  }

  create(filter: SubscriberFilter, options: SubscriberOptions): Subscriber {
    const compression = options.wire.zstd ? 'zstd' : options.deflate ? 'deflate' : 'none';
    return new Subscriber(this.#nextId++, filter, { ...options, tally: this.#options.metrics.tally(options.wire.name, compression) });
  }

  open(subscriber: Subscriber, sink: SubscriberSink): void {
    subscriber.sink = sink;
    this.#subscribers.add(subscriber);
    if (subscriber.deflate) this.#deflating++;
    this.#perAddress.set(subscriber.remoteAddress, this.connectionsFrom(subscriber.remoteAddress) + 1);
    this.#resetWindow(subscriber);
    subscriber.lastSentMs = Date.now();
    if (subscriber.heartbeatMs > 0) this.#withHeartbeat.add(subscriber);
    if (subscriber.wire.prelude) sink.send(subscriber.wire.prelude, false);
    if (subscriber.greeting) {
      const { bytes, binary } = subscriber.wire.control(subscriber.greeting);
      sink.send(bytes, binary);
    }
    this.#pump(subscriber);
  }

  /** A text or binary message from the client. */
  message(subscriber: Subscriber, data: Uint8Array, binary: boolean): void {
    if (subscriber.mode === 'closed') return;
    if (subscriber.wire.name === 'v2') {
      this.#close(subscriber, CLOSE_POLICY, 'subscribeEvents takes no client messages: set filters with query parameters and reconnect', 'bad_message');
      return;
    }
    // Binary messages are ignored, as in Jetstream v1.
    if (binary) return;
    let message: { type?: unknown; payload?: unknown };
    try {
      message = JSON.parse(Buffer.from(data).toString('utf8'));
    } catch (err) {
      this.#close(subscriber, 1007, `message is not JSON: ${(err as Error).message}`, 'bad_message');
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#close(subscriber, CLOSE_POLICY, 'message must be a JSON object with a "type"', 'bad_message');
      return;
    }
    if (message.type !== 'options_update') return; // unknown message types are ignored, as in Jetstream
    const payload = message.payload;
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      this.#close(subscriber, CLOSE_POLICY, 'invalid options_update: payload must be an object', 'bad_options');
      return;
    }
    let filter: SubscriberFilter;
    try {
      const fields = payload as Record<string, unknown>;
      for (const key of ['wantedCollections', 'wantedDids'] as const) {
        if (fields[key] != null && !Array.isArray(fields[key])) throw new OptionError(`${key} must be an array`);
      }
      // Without the key the size limit stays (Jetstream v1 never changes it on an update).
      const maxMessageSizeBytes = fields.maxMessageSizeBytes ?? subscriber.filter.maxMessageBytes;
      filter = parseFilter({ ...(fields as Parameters<typeof parseFilter>[0]), maxMessageSizeBytes });
    } catch (err) {
      if (!(err instanceof OptionError)) throw err;
      this.#close(subscriber, CLOSE_POLICY, `invalid options_update: ${err.message}`, 'bad_options');
      return;
    }
    if (subscriber.mode === 'live') {
      this.#live.remove(subscriber);
      subscriber.filter = filter;
      this.#live.add(subscriber);
      return;
    }
    subscriber.filter = filter;
    if (subscriber.mode === 'hello') {
      subscriber.mode = 'replay';
      this.#resetWindow(subscriber);
      this.#pump(subscriber);
    }
  }

  drain(subscriber: Subscriber): void {
    if (subscriber.mode !== 'blocked' || subscriber.sink!.bufferedAmount() > this.#options.highWaterBytes / 2) return;
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
    this.#withHeartbeat.delete(subscriber);
    if (this.#subscribers.delete(subscriber)) {
      if (subscriber.deflate) this.#deflating--;
      const left = this.connectionsFrom(subscriber.remoteAddress) - 1;
      if (left > 0) this.#perAddress.set(subscriber.remoteAddress, left);
      else this.#perAddress.delete(subscriber.remoteAddress);
      this.#options.metrics.disconnects.inc({ reason });
    }
  }

  /** Closes every subscriber (shutdown: 1001 Going Away). */
  closeAll(code: number, reason: string): void {
    for (const subscriber of [...this.#subscribers]) this.#close(subscriber, code, reason, 'shutdown', 'ServerShuttingDown');
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
  }

  #pump(subscriber: Subscriber): void {
    if (subscriber.mode !== 'replay') return;
    const { store, pumpSliceMs, metrics } = this.#options;
    const started = performance.now();
    const filter = (entry: Entry) => {
      if (!wantsEvent(subscriber.filter, entry)) return false;
      // Counted only for wanted events, as the live index does.
      if (!isTooLarge(subscriber.filter, entry)) return true;
      metrics.tooLarge++;
      return false;
    };
    for (;;) {
      if (subscriber.position < store.trimmedUpTo) {
        this.#tooSlow(subscriber, FELL_BEHIND);
        return;
      }
      const { entries, position } = store.readAfter(subscriber.position, { maxEntries: READ_BATCH, maxScanned: READ_SCAN_LIMIT, filter });
      const sent = entries.length > 0 ? this.#send(subscriber, entries) : 'all';
      if (sent === 'ended') return;
      if (sent === 'full') {
        subscriber.mode = 'blocked';
        return;
      }
      subscriber.position = position;
      if (position >= store.hotLog.newest) {
        subscriber.mode = 'live';
        this.#live.add(subscriber);
        return;
      }
      if (performance.now() - started > pumpSliceMs) {
        setImmediate(() => this.#pump(subscriber));
        return;
      }
    }
  }

  /**
   * Sends entries in order: 'full' (and position at the last one sent) if the buffer filled
   * first; 'ended' if the subscriber's `limit` was reached, and it is closed here, cleanly.
   */
  #send(subscriber: Subscriber, entries: readonly Entry[]): 'all' | 'full' | 'ended' {
    const sink = subscriber.sink!;
    const { highWaterBytes } = this.#options;
    const { wire, tally } = subscriber;
    let full = false;
    sink.cork(() => {
      for (const entry of entries) {
        const bytes = wire.frame(entry);
        sink.send(bytes, wire.zstd);
        tally.events++;
        tally.bytes += bytes.byteLength;
        subscriber.position = entry.timeUs;
        if (--subscriber.remaining === 0) return;
        if (sink.bufferedAmount() > highWaterBytes) {
          full = true;
          return;
        }
      }
    });
    subscriber.lastSentMs = Date.now();
    if (subscriber.remaining > 0) return full ? 'full' : 'all';
    this.#close(subscriber, 1000, 'limit reached', 'limit_reached');
    return 'ended';
  }

  #publish(entries: readonly Entry[]): void {
    if (this.#live.size === 0) return;
    const { metrics } = this.#options;
    const batches = new Map<Subscriber, Entry[]>();
    for (const entry of entries) {
      this.#live.forEachMatch(
        entry,
        (subscriber) => {
          const batch = batches.get(subscriber);
          if (batch) batch.push(entry);
          else batches.set(subscriber, [entry]);
        },
        () => metrics.tooLarge++,
      );
    }
    const before = entries[0].timeUs - 1;
    for (const [subscriber, batch] of batches) {
      subscriber.position = before;
      if (this.#send(subscriber, batch) !== 'full') continue;
      this.#live.remove(subscriber);
      subscriber.mode = 'blocked';
      this.#resetWindow(subscriber);
    }
  }

  #checkSlowConsumers(): void {
    const { store, slowWindowMs } = this.#options;
    const now = Date.now();
    const tip = store.hotLog.newest;
    for (const subscriber of this.#subscribers) {
      if (subscriber.mode !== 'replay' && subscriber.mode !== 'blocked') continue;
      if (subscriber.position < store.trimmedUpTo) {
        this.#tooSlow(subscriber, FELL_BEHIND);
        continue;
      }
      const { window } = subscriber;
      if (now - window.atMs < slowWindowMs) continue;
      const streamAdvance = tip - window.tip;
      const ownAdvance = subscriber.position - window.position;
      if (streamAdvance > 0 && ownAdvance < streamAdvance * MIN_DRAIN_RATIO) {
        const seconds = Math.round(slowWindowMs / 1000);
        this.#tooSlow(subscriber, `read less than half as fast as the stream for ${seconds}s and is ${Math.round((tip - subscriber.position) / 1e6)}s behind`);
        continue;
      }
      this.#resetWindow(subscriber);
    }
  }

  #resetWindow(subscriber: Subscriber): void {
    subscriber.window = { atMs: Date.now(), position: subscriber.position, tip: this.#options.store.hotLog.newest };
  }

  #tooSlow(subscriber: Subscriber, message: string): void {
    this.#options.logger.info({ subscriber: subscriber.id, remoteAddress: subscriber.remoteAddress, message }, 'dropping a slow consumer');
    const { bytes, binary } = subscriber.wire.errorFrame('ConsumerTooSlow', message);
    subscriber.sink!.send(bytes, binary);
    this.#close(subscriber, CLOSE_POLICY, `ConsumerTooSlow: ${message}`, 'consumer_too_slow');
  }

  /**
   * Ends a subscriber's stream. With `error`, a wire without close frames (an HTTP stream)
   * first gets the reason as an error frame, so no stream ends without saying why.
   */
  #close(subscriber: Subscriber, code: number, reason: string, metricReason: string, error?: string): void {
    const { sink, wire } = subscriber;
    this.closed(subscriber, metricReason);
    if (error && sink && !wire.closeFrame) {
      const { bytes, binary } = wire.errorFrame(error, reason);
      sink.send(bytes, binary);
    }
    sink?.close(code, truncateReason(reason));
  }

  #pingAll(): void {
    for (const subscriber of this.#subscribers) {
      const sink = subscriber.sink;
      // A blocked socket's ping waits behind its backlog; the slow-consumer rule covers it.
      if (!sink?.ping || subscriber.mode === 'blocked') continue;
      if (subscriber.awaitingPong) {
        this.#options.logger.info({ subscriber: subscriber.id }, 'subscriber did not answer a ping; dropping it');
        this.closed(subscriber, 'ping_timeout');
        sink.terminate();
        continue;
      }
      subscriber.awaitingPong = true;
      sink.ping();
    }
  }

  /**
   * A heartbeat goes to a subscriber that asked for one and was sent nothing for its interval.
   * Its time_us resumes right after everything this subscriber has examined: nothing missed,
   * nothing repeated. A blocked subscriber has messages queued, so none is due.
   */
  #sendHeartbeats(): void {
    const now = Date.now();
    const tip = this.#options.store.hotLog.newest;
    for (const subscriber of this.#withHeartbeat) {
      if (subscriber.mode === 'blocked' || now - subscriber.lastSentMs < subscriber.heartbeatMs) continue;
      // A live subscriber has been sent every wanted event up to the tip (publish is synchronous).
      const resumeAt = (subscriber.mode === 'live' ? tip : subscriber.position) + 1;
      const { bytes, binary } = subscriber.wire.heartbeat!(resumeAt);
      subscriber.sink!.send(bytes, binary);
      subscriber.lastSentMs = now;
    }
  }
}

/** Close reasons are limited to 123 bytes of UTF-8. */
export function truncateReason(reason: string): string {
  const bytes = Buffer.from(reason);
  if (bytes.byteLength <= 123) return reason;
  return bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD$/, '') + '...';
}
