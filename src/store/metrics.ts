import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DidIndexState, EventStore } from './event-store.ts';
import { oldestOrUnreadable, UnreadableBufferError } from './read-errors.ts';

export type StoreMetrics = ReturnType<typeof createStoreMetrics>;

const DID_INDEX_STATES: Record<DidIndexState, number> = { ok: 0, bypassed: 1, rebuilding: 2, abandoned: 3 };

function withValue(gauge: Gauge, value: number): Gauge {
  gauge.set(value);
  return gauge;
}

export function createStoreMetrics(registry: Registry) {
  const registers = [registry];
  return {
    commits: new Histogram({
      name: 'contrail_store_commit_seconds',
      help: 'Time to commit one batch of events to LMDB',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    commitErrors: new Counter({ name: 'contrail_store_commit_errors_total', help: 'Failed LMDB commits (retried)', registers }),
    eventsTrimmed: new Counter({
      name: 'contrail_store_trimmed_events_total',
      help: 'Events removed by retention, by bound',
      labelNames: ['bound'],
      registers,
    }),
    skipped: new Counter({
      name: 'contrail_ingest_skipped_total',
      help: 'Upstream messages not stored because they repeat what is stored, by reason',
      labelNames: ['reason'],
      registers,
    }),
    filteredOps: new Counter({
      name: 'contrail_ingest_filtered_ops_total',
      help: 'Commit ops not stored because --ingest-collections does not keep their collection',
      registers,
    }),
    pendingBytes: new Gauge({ name: 'contrail_ingest_pending_bytes', help: 'Event bytes waiting for a commit', registers }),
    upstreamLag: withValue(
      new Gauge({
        name: 'contrail_upstream_lag_seconds',
        help: 'Now minus the upstream time of the last durable commit, measured at that commit; NaN until the first one',
        registers,
      }),
      // prom-client shows a label-less gauge from the start; 0 would claim a caught-up upstream.
      NaN,
    ),
    ingestPaused: new Gauge({ name: 'contrail_ingest_paused', help: '1 while ingest waits for the store', registers }),
  };
}

/**
 * The buffer's extent as gauges, read from the store once per scrape: its oldest and newest
 * event, how many events and bytes it holds, the upstream seq it holds, and the hot log's size;
 * and the events committed to it, and the reads of it LMDB refused. Read from the store, they hold on every node whoever wrote
 * the buffer (this node's ingest, or a cluster's leader through its stream) and from the start.
 */
export function registerBufferGauges(
  registry: Registry,
  store: Pick<EventStore, 'oldest' | 'newestTimeUs' | 'size' | 'hotLog' | 'sealState' | 'didIndex' | 'didIndexMarkWriteFailures' | 'unreadableReads' | 'workerUnreadableReads' | 'upstreamCursor' | 'onCommitted'>,
): void {
  const registers = [registry];
  const committed = new Counter({ name: 'contrail_store_events_total', help: 'Events committed to the buffer', registers });
  store.onCommitted((entries) => committed.inc(entries.length));
  new Gauge({
    name: 'contrail_upstream_seq',
    help: 'Last upstream seq whose events are durable in the buffer (0 before the first)',
    registers,
    collect() {
      this.set(store.upstreamCursor?.seq ?? 0);
    },
  });
  // Read once per scrape for the two gauges that show it (LMDB stats of four tables): prom-client
  // collects a scrape's gauges in one turn of the event loop, and the read is forgotten at the
  // next turn, so the next scrape reads it again.
  let scraped: ReturnType<typeof store.size> | undefined;
  const size = () => {
    if (scraped === undefined) {
      scraped = store.size();
      setImmediate(() => (scraped = undefined));
    }
    return scraped;
  };
  // Base units (seconds), and NaN while the buffer is empty: there is no such event, and 0 would
  // read as 1970 (a buffer 56 years deep).
  const seconds = (timeUs: number | undefined) => (timeUs === undefined ? NaN : timeUs / 1e6);
  // The oldest is read from the block directory; a page of it damaged on disk is counted and
  // logged by the store, and costs this gauge alone, not the scrape.
  const oldestSeconds = () => {
    const oldest = oldestOrUnreadable(store);
    return oldest instanceof UnreadableBufferError ? NaN : seconds(oldest?.timeUs);
  };
  new Gauge({
    name: 'contrail_store_oldest_event_timestamp_seconds',
    help: 'Unix time of the oldest buffered event (its time_us in seconds); NaN while the buffer is empty, or while the block directory cannot be read (contrail_store_unreadable_reads_total)',
    registers,
    collect() {
      this.set(oldestSeconds());
    },
  });
  new Gauge({
    name: 'contrail_store_newest_event_timestamp_seconds',
    help: 'Unix time of the newest buffered event (its time_us in seconds); NaN while the buffer is empty',
    registers,
    collect() {
      this.set(seconds(store.newestTimeUs));
    },
  });
  new Gauge({
    // Not contrail_store_events: OpenMetrics names the counter contrail_store_events_total that.
    name: 'contrail_store_buffered_events',
    help: 'Events in the buffer',
    registers,
    collect() {
      this.set(size().eventCount);
    },
  });
  new Gauge({
    name: 'contrail_store_bytes',
    help: 'Bytes of LMDB pages the buffered events occupy',
    registers,
    collect() {
      this.set(size().bytes);
    },
  });
  new Gauge({
    name: 'contrail_hot_log_bytes',
    help: 'Bytes of event JSON held in the in-memory hot log',
    registers,
    collect() {
      this.set(store.hotLog.bytes);
    },
  });
  new Gauge({
    name: 'contrail_store_unsealed_events',
    help: 'Committed events waiting in the tail to be sealed into a compressed block (grows while sealing fails)',
    registers,
    collect() {
      this.set(store.sealState.unsealedEvents);
    },
  });
  new Counter({
    name: 'contrail_store_seal_failures_total',
    help: 'Failed attempts to seal a block (disk full); each is retried after the next commit',
    registers,
    collect() {
      this.reset();
      this.inc(store.sealState.failedSeals);
    },
  });
  new Gauge({
    name: 'contrail_store_did_index_state',
    help: 'The per-DID index: 0 in use, 1 bypassed (found inconsistent: DID-filtered replays scan the blocks), 2 being rebuilt (they scan until it is done), 3 abandoned (inconsistent again after 3 rebuilds within 24 h: they scan until the next start)',
    registers,
    collect() {
      this.set(DID_INDEX_STATES[store.didIndex.state]);
    },
  });
  new Counter({
    name: 'contrail_store_unreadable_reads_total',
    help: 'Reads of the buffer LMDB refused on the main thread (a page of data.mdb damaged on disk: MDB_CORRUPTED, MDB_PAGE_NOTFOUND; replay workers\' are contrail_store_worker_unreadable_reads_total): replays, cursor look-ups, retention, /stats, the status line, these gauges; each reason is logged once',
    registers,
    collect() {
      this.reset();
      this.inc(store.unreadableReads);
    },
  });
  new Counter({
    name: 'contrail_store_worker_unreadable_reads_total',
    help: "Replay workers' reads of the buffer LMDB refused (a page of data.mdb damaged on disk), that broke on what they read (a tail run's checksum, a stored record that does not decode), or that read around a refused page (the block directory's last), each read again on the main thread, which may read it without fault (it holds the tail in memory); a worker's faults (its snapshot older than the request, a bug outside the store's read) are logged, not counted (a throw inside the read, the filter's included, is counted); each reason is logged once, its numbers aside",
    registers,
    collect() {
      this.reset();
      this.inc(store.workerUnreadableReads);
    },
  });
  new Counter({
    name: 'contrail_store_did_index_inconsistencies_total',
    help: 'Times a read found the per-DID index contradicting its blocks (each bypasses the index and starts its rebuild)',
    registers,
    collect() {
      this.reset();
      this.inc(store.didIndex.inconsistencies);
    },
  });
  new Counter({
    name: 'contrail_store_did_index_mark_write_failures_total',
    help: "Writes of the per-DID index's inconsistency mark LMDB refused (a page of meta damaged on disk): each leaves the index bypassed and not rebuilt, since the rebuild could not record its end either",
    registers,
    collect() {
      this.reset();
      this.inc(store.didIndexMarkWriteFailures);
    },
  });
}
