import type { Logger } from 'pino';
import type { BackfillContext } from '../backfill/index.ts';
import type { EventStore } from '../store/index.ts';
import type { Entry } from '../events/index.ts';
import type { CloseReason } from './close-reasons.ts';
import type { LiveIndex } from './live-index.ts';
import type { ServerMetrics } from './metrics.ts';
import type { ReplayPool } from './replay-pool.ts';
import type { Subscriber } from './subscriber.ts';

export interface SubscriberHubOptions {
  store: EventStore;
  logger: Logger;
  metrics: ServerMetrics;
  /**
   * Stop pushing to a subscriber once this many bytes wait in its sink's send buffer (beyond what
   * the kernel's socket buffer took). uWS never gives a socket's send-buffer memory back while
   * the socket lives, so this is what each subscriber may keep for good, not a passing peak.
   */
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
  /** Repo snapshots for backfill=true subscribers; absent = backfill is refused. */
  backfill?: BackfillContext;
  /** Worker threads that read replays from LMDB; absent = replays read on the main thread. */
  replayPool?: ReplayPool;
  /** Whether a live commit is due in this turn of the event loop: replay sends then wait a turn (replay-turns.ts). */
  commitDue?: () => boolean;
  /**
   * On a cluster node: resolves once the local buffer holds everything the cluster's stream held
   * when it was called — or never, once `wanted` says the caller left. Present = a cursor ahead of
   * the buffer waits for it (Admission.resolveAhead).
   */
  awaitClusterStreamEnd?: (wanted: () => boolean) => Promise<void>;
}

/** Every knob set; backfill, the replay workers and the cluster stay optional. */
type Optional = 'backfill' | 'replayPool' | 'commitDue' | 'awaitClusterStreamEnd';
export type HubSettings = Required<Omit<SubscriberHubOptions, Optional>> & Pick<SubscriberHubOptions, Optional>;

/** The options with every knob set; `??` rather than spreading defaults, so a knob passed as undefined keeps its default. */
export function withHubDefaults(options: SubscriberHubOptions): HubSettings {
  return {
    ...options,
    highWaterBytes: options.highWaterBytes ?? 256 * 1024,
    slowWindowMs: options.slowWindowMs ?? 60_000,
    pingIntervalMs: options.pingIntervalMs ?? 30_000,
    heartbeatTickMs: options.heartbeatTickMs ?? 250,
    pumpSliceMs: options.pumpSliceMs ?? 3,
    nowMs: options.nowMs ?? Date.now,
  };
}

/** What the hub's helpers (watchdog.ts, backfill-feed.ts, options-update.ts, replay-step.ts) may read of it and ask of it. */
export interface HubHooks extends HubSettings {
  /** Everyone connected. */
  readonly subscribers: Iterable<Subscriber>;
  /** The subscribers at the live tip. */
  readonly live: LiveIndex<Subscriber>;
  /** Ends a subscriber's stream: with `close`, or (undefined) by dropping the connection. */
  end(subscriber: Subscriber, metricReason: string, close?: CloseReason): void;
  /** Replays from `position` in a new slow-consumer window (a live subscriber leaves the live index). */
  replayFrom(subscriber: Subscriber, position: number): void;
  /** Restarts the subscriber's slow-consumer window: it made progress. */
  startWindow(subscriber: Subscriber): void;
  /** Subscriber.send (entries[from..to)), ending the stream cleanly once its `limit` is reached. */
  send(subscriber: Subscriber, entries: readonly Entry[], frames?: readonly Uint8Array[], from?: number, to?: number): 'all' | 'full' | 'limit';
}
