import type { SubscriberBackfill } from '../backfill/index.ts';
import type { Entry } from '../events/index.ts';
import type { EventStore, OldestHeld } from '../store/index.ts';
import { truncateReason, type CloseReason } from './close-reasons.ts';
import type { SubscriberFilter } from './filter.ts';
import type { SentTally, ServerMetrics } from './metrics.ts';
import type { DrainWindow } from './slow-consumer.ts';
import type { SubscriberSink } from './transport.ts';
import type { Wire } from './wire.ts';

/** What a WebSocket upgrade or an HTTP stream's start decided for a subscriber, before it has a sink. */
export interface Admission {
  filter: SubscriberFilter;
  wire: Wire;
  /** Negotiated permessage-deflate (the transport compresses; the hub only counts). */
  deflate: boolean;
  /** The time_us after which its stream starts (see positionAtTime and subscribe-events.ts). */
  position: number;
  /** Its cursor was at or below what retention had removed: it starts at the oldest event held then (see startsAtOldest). */
  fromOldest?: boolean;
  requireHello: boolean;
  remoteAddress: string;
  /**
   * Sent before any event (a v2 #info about the cursor), made when sent: at connect, or with
   * fromOldest once the subscriber starts from the oldest event (Subscriber.startFromHere), given
   * that event.
   */
  greeting?: (start?: OldestHeld) => Buffer;
  /** End the stream cleanly after this many events (the HTTP streams' `limit`). */
  limit?: number;
  /** Send a heartbeat after this long without a message (needs a wire with heartbeats). */
  heartbeatMs?: number;
  /** Backfill the wanted repos first (`backfill=true`). */
  backfill?: boolean;
  /**
   * Set on a cluster node for a cursor past its buffer's newest event: the cursor may name an
   * event another node holds and this one has not applied yet. The hub waits until this node
   * holds everything the cluster's stream held at connect, then resolves the cursor again with
   * this, instead of taking it for a future cursor now (see subscribers.ts, settle).
   */
  resolveAhead?: () => { position: number; greeting?: () => Buffer };
}

/** 'settling': a cluster node catching up to a cursor ahead of its buffer (Admission.resolveAhead). */
export type SubscriberMode = 'settling' | 'hello' | 'replay' | 'blocked' | 'live' | 'closed';

/** A connected subscriber: an admission with its sink (a WebSocket or an HTTP stream). */
export class Subscriber {
  mode: SubscriberMode;
  filter: SubscriberFilter;
  /** Newest time_us examined for this subscriber (sent or filtered out). Stale while live: the tip is. */
  position: number;
  /**
   * Its cursor asked for the oldest event held and nothing has been sent to it yet: a trim that
   * passes its position moves it to the new oldest instead of ending it (replay-step.ts).
   */
  followsOldest: boolean;
  awaitingPong = false;
  /** Where the current slow-consumer window started (see slow-consumer.ts). */
  window: DrainWindow = { atMs: 0, position: 0, tip: 0 };
  readonly wire: Wire;
  readonly deflate: boolean;
  readonly remoteAddress: string;
  /** Send a heartbeat after this long without a message; 0 = never. */
  readonly heartbeatMs: number;
  /** When the last message went out (for the heartbeat). */
  lastSentMs: number;
  /** Events still to send before the stream ends by itself (`limit`); Infinity = no limit. */
  remaining: number;
  /** Its repo backfills, once it asked for one (see backfill-feed.ts). */
  backfill: SubscriberBackfill | undefined;
  /** Still owes its hello (`requireHello`): it waits in 'hello' once settled. */
  helloDue: boolean;
  /** Asked for a backfill while settling: started once settled. */
  backfillDue: boolean;
  /** Its greeting, held while it follows the oldest event (see startFromHere). */
  #heldGreeting: Admission['greeting'];

  static #lastId = 0;
  /** Names it in logs. */
  readonly id = ++Subscriber.#lastId;
  /** Its events and bytes sent, counted under its wire and compression. */
  readonly tally: SentTally;

  constructor(admission: Admission, readonly sink: SubscriberSink, metrics: Pick<ServerMetrics, 'tally'>, nowMs: number) {
    this.tally = metrics.tally(admission.wire.name, compressionOf(admission));
    this.filter = admission.filter;
    this.wire = admission.wire;
    this.deflate = admission.deflate;
    this.remoteAddress = admission.remoteAddress;
    this.position = admission.position;
    this.followsOldest = admission.fromOldest === true;
    this.helloDue = admission.requireHello;
    this.backfillDue = admission.backfill === true;
    this.mode = admission.resolveAhead ? 'settling' : admission.requireHello ? 'hello' : 'replay';
    this.heartbeatMs = admission.heartbeatMs ?? 0;
    this.remaining = admission.limit ?? Infinity;
    this.lastSentMs = nowMs;
  }

  /**
   * What goes out before any event: the wire's prelude, then the admission's greeting (which a
   * settling subscriber sends once settled, and one that follows the oldest event once it starts).
   */
  greet(greeting: Admission['greeting']): void {
    const { sink, wire } = this;
    if (wire.prelude) sink.send(wire.prelude, false);
    if (this.followsOldest) this.#heldGreeting = greeting;
    else if (greeting) this.sendControl(greeting());
  }

  /**
   * It starts from its position (something is sent, or its replay is done): a trim no longer
   * moves it. Its held greeting goes out first, so a v2 #info names the seq it resumed from:
   * `start`, the oldest event held when what it is sent was read.
   */
  startFromHere(start: OldestHeld | undefined): void {
    this.followsOldest = false;
    const greeting = this.#heldGreeting;
    if (!greeting) return;
    this.#heldGreeting = undefined;
    this.sendControl(greeting(start));
  }

  sendControl(message: Buffer): void {
    const { bytes, binary } = this.wire.control(message);
    this.sink.send(bytes, binary);
  }

  /** The wire's error frame: why the stream ends, sent ahead of its close. */
  sendError(error: string, message: string, cursor?: number): void {
    const { bytes, binary } = this.wire.errorFrame(error, message, cursor);
    this.sink.send(bytes, binary);
  }

  /** zstd, deflate or none: the metrics label. */
  get compression(): 'zstd' | 'deflate' | 'none' {
    return compressionOf(this);
  }

  /**
   * Sends entries[from..to) in order, advancing the position to each one sent: 'full' (position
   * at the last one sent) if the sink's buffer passed highWaterBytes first; 'limit' once `limit`
   * events were sent. `frames`, when given, are the entries' frames on this wire (parallel to
   * `entries`), made elsewhere (a replay worker). A range, not a slice: a replay sends a read's
   * batch a step at a time, and a copy of the rest per step was a sixth of what replays allocate.
   */
  send(entries: readonly Entry[], highWaterBytes: number, nowMs: number, frames?: readonly Uint8Array[], from = 0, to = entries.length): 'all' | 'full' | 'limit' {
    const { sink, wire } = this;
    // Counted in locals, small integers only, and stored once: a field written per event, or a
    // count that is not a small integer (`remaining` is Infinity without a limit), boxes a new
    // number at each write (with 20 replays, one per event was a tenth of what they allocated).
    let next = from;
    let bytes = 0;
    let full = false;
    /** Where `limit` is reached (Infinity without one). */
    const limitAt = from + this.remaining;
    // A subscriber not live is catching up: its frames may be made at the replay level.
    const frameOf = this.mode === 'live' ? wire.frame : (wire.replayFrame ?? wire.frame);
    sink.cork(() => {
      while (next < to) {
        const entry = entries[next]!;
        const frame = frames?.[next] ?? frameOf(entry);
        sink.send(frame, wire.zstd);
        bytes += frame.byteLength;
        next++;
        if (next === limitAt) return;
        if (sink.bufferedAmount() > highWaterBytes) {
          full = true;
          return;
        }
      }
    });
    const remaining = limitAt - next;
    if (next > from) {
      this.position = entries[next - 1]!.timeUs;
      this.tally.events += next - from;
      this.tally.bytes += bytes;
      this.remaining = remaining;
    }
    this.lastSentMs = nowMs;
    if (remaining === 0) return 'limit';
    return full ? 'full' : 'all';
  }

  /**
   * Ends the stream: with `close` (a wire without close frames — an HTTP stream — first gets
   * close.error as an error frame, so no stream ends without saying why), or without a goodbye
   * (a peer that stopped answering).
   */
  hangUp(close?: CloseReason): void {
    const { sink, wire } = this;
    if (!close) return sink.terminate();
    if (close.error && !wire.closeFrame) this.sendError(close.error, close.reason);
    sink.close(close.code, truncateReason(close.reason));
  }
}

export function compressionOf(subscriber: { wire: Wire; deflate: boolean }): 'zstd' | 'deflate' | 'none' {
  return subscriber.wire.zstd ? 'zstd' : subscriber.deflate ? 'deflate' : 'none';
}

/**
 * Whether a time_us cursor starts at the oldest event held: it is at or below what retention had
 * removed (0 and negative included), so the client has asked for whatever is oldest, and
 * starting at a later oldest (retention trimmed again before it was sent anything) loses it
 * nothing it could have had. A cursor still in the buffer names the events it wants.
 */
export function startsAtOldest(store: Pick<EventStore, 'trimmedUpTo'>, cursor: number | undefined): boolean {
  return cursor !== undefined && cursor <= store.trimmedUpTo;
}

/**
 * Where a time_us cursor (v1's) starts: absent or in the future = the tip; otherwise just
 * before the cursor (it is inclusive), but never below what retention has trimmed.
 * "The future" is after the last time_us issued, not after the wall clock: after the clock
 * steps back, a client resuming from a time_us it holds is still ahead of "now".
 */
export function positionAtTime(store: Pick<EventStore, 'lastTimeUs' | 'hotLog' | 'trimmedUpTo'>, cursor: number | undefined): number {
  return cursor === undefined || cursor > store.lastTimeUs ? store.hotLog.newest : Math.max(cursor - 1, store.trimmedUpTo);
}
