import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Server counters. Per-event tallies are plain numbers on the hot path and are handed to
 * prom-client only when Prometheus scrapes, so sending never pays for label lookups.
 */
export class ServerMetrics {
  readonly sent = { zstd: { events: 0, bytes: 0 }, none: { events: 0, bytes: 0 } };
  readonly connections: Counter<'result'>;
  readonly disconnects: Counter<'reason'>;
  /** Events a subscriber wanted but were larger than its maxMessageSizeBytes. */
  tooLarge = 0;

  constructor(registry: Registry, subscriberCounts: () => Array<{ compression: string; mode: string; count: number }>) {
    const registers = [registry];
    const sent = this.sent;
    const reported = { zstd: { events: 0, bytes: 0 }, none: { events: 0, bytes: 0 } };
    const flush = (counter: Counter<'compression'>, field: 'events' | 'bytes') => {
      for (const compression of ['zstd', 'none'] as const) {
        const delta = sent[compression][field] - reported[compression][field];
        if (delta > 0) counter.inc({ compression }, delta);
        reported[compression][field] = sent[compression][field];
      }
    };
    new Counter({
      name: 'contrail_events_sent_total',
      help: 'Events sent to subscribers, by compression',
      labelNames: ['compression'],
      registers,
      collect() {
        flush(this, 'events');
      },
    });
    new Counter({
      name: 'contrail_bytes_sent_total',
      help: 'Event bytes sent to subscribers (after compression), by compression',
      labelNames: ['compression'],
      registers,
      collect() {
        flush(this, 'bytes');
      },
    });
    new Gauge({
      name: 'contrail_subscribers',
      help: 'Connected subscribers, by compression and mode (hello = waiting for options_update, replay = reading the buffer, live = at the tip)',
      labelNames: ['compression', 'mode'],
      registers,
      collect() {
        this.reset();
        for (const { compression, mode, count } of subscriberCounts()) this.set({ compression, mode }, count);
      },
    });
    this.connections = new Counter({
      name: 'contrail_subscriber_connections_total',
      help: 'Subscribe attempts, by result (accepted, bad_request, too_many_subscribers, too_many_from_ip)',
      labelNames: ['result'],
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
  }
}
