import { Counter, Gauge, type Registry } from 'prom-client';
import type { Wire } from './wire.ts';

/**
 * Server counters. Per-event tallies are plain numbers on the hot path and are handed to
 * prom-client only when Prometheus scrapes, so sending never pays for label lookups.
 */
export interface SentTally {
  events: number;
  bytes: number;
}

/** The compressions each wire can have (zstd is v1's and v2's; permessage-deflate is a WebSocket's). */
const WIRE_COMPRESSIONS: Record<Wire['name'], ReadonlyArray<'none' | 'zstd' | 'deflate'>> = {
  v1: ['none', 'zstd', 'deflate'],
  v2: ['none', 'zstd', 'deflate'],
  sse: ['none'],
  ndjson: ['none'],
};
/** A subscriber's modes while connected (SubscriberMode but 'closed'). */
const MODES = ['settling', 'hello', 'replay', 'blocked', 'live'] as const;

/**
 * Every series contrail_subscribers can have, each shown (0 when nobody is in it) from the start:
 * a series that vanished with its last subscriber would make sum(contrail_subscribers) an empty
 * result, a gap in a graph and an alert on `== 0` that never fires.
 */
const SUBSCRIBER_SERIES = Object.entries(WIRE_COMPRESSIONS).flatMap(([wire, compressions]) =>
  compressions.flatMap((compression) => MODES.map((mode) => ({ wire, compression, mode }))),
);

export class ServerMetrics {
  /** Per wire and compression ("v1|zstd"): events and bytes sent, counted on the hot path. */
  readonly #sent = new Map<string, SentTally>();
  readonly connections: Counter<'wire' | 'result'>;
  readonly disconnects: Counter<'reason'>;
  /** Events a subscriber wanted but were larger than its maxMessageSizeBytes. */
  tooLarge = 0;
  /** Replay worker reads asked for ahead, while the subscriber's batch before them is sent (replay-reads.ts). */
  readsAhead = 0;

  constructor(registry: Registry, subscriberCounts: () => Array<{ wire: string; compression: string; mode: string; count: number }>) {
    const registers = [registry];
    const sent = this.#sent;
    const reported = new Map<string, SentTally>();
    const flush = (counter: Counter<'wire' | 'compression'>, field: keyof SentTally) => {
      for (const [key, tally] of sent) {
        const last = reported.get(key) ?? { events: 0, bytes: 0 };
        const [wire, compression] = key.split('|');
        if (tally[field] > last[field]) counter.inc({ wire, compression }, tally[field] - last[field]);
        reported.set(key, { ...last, [field]: tally[field] });
      }
    };
    new Counter({
      name: 'contrail_events_sent_total',
      help: 'Events sent to subscribers, by wire (v1 = /subscribe, v2 = subscribeEvents) and compression',
      labelNames: ['wire', 'compression'],
      registers,
      collect() {
        flush(this, 'events');
      },
    });
    new Counter({
      name: 'contrail_bytes_sent_total',
      help: 'Event bytes sent to subscribers, by wire and compression (after zstd; deflate: before the transport deflates)',
      labelNames: ['wire', 'compression'],
      registers,
      collect() {
        flush(this, 'bytes');
      },
    });
    new Gauge({
      name: 'contrail_subscribers',
      help: 'Connected subscribers, by wire, compression and mode (settling = a cluster node catching up to a cursor ahead of its buffer, hello = waiting for options_update, replay = reading the buffer, blocked = waiting for the client to read past the send high-water mark, live = at the tip)',
      labelNames: ['wire', 'compression', 'mode'],
      registers,
      collect() {
        for (const labels of SUBSCRIBER_SERIES) this.set(labels, 0);
        for (const { wire, compression, mode, count } of subscriberCounts()) this.set({ wire, compression, mode }, count);
      },
    });
    this.connections = new Counter({
      name: 'contrail_subscriber_connections_total',
      help: 'Subscribe attempts, by wire and result (accepted = a subscriber was opened, bad_request, too_many_subscribers, too_many_from_ip)',
      labelNames: ['wire', 'result'],
      registers,
    });
    this.disconnects = new Counter({
      name: 'contrail_subscriber_disconnects_total',
      help: 'Subscribers gone, by reason',
      labelNames: ['reason'],
      registers,
    });
    let reportedTooLarge = 0;
    const metrics = this;
    new Counter({
      name: 'contrail_events_skipped_total',
      help: 'Events a subscriber wanted but was not sent, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        this.inc({ reason: 'max_message_size' }, metrics.tooLarge - reportedTooLarge);
        reportedTooLarge = metrics.tooLarge;
      },
    });
    let reportedReadsAhead = 0;
    new Counter({
      name: 'contrail_replay_reads_ahead_total',
      help: "Replay worker reads asked for a subscriber while its batch before them was still to be sent (read ahead, so the worker reads as the main thread sends)",
      registers,
      collect() {
        this.inc(metrics.readsAhead - reportedReadsAhead);
        reportedReadsAhead = metrics.readsAhead;
      },
    });
  }

  /** The running tally for one wire and compression, shared by its subscribers. */
  tally(wire: string, compression: string): SentTally {
    const key = `${wire}|${compression}`;
    let tally = this.#sent.get(key);
    if (!tally) this.#sent.set(key, (tally = { events: 0, bytes: 0 }));
    return tally;
  }
}
