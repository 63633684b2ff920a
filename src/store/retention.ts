import type { Logger } from 'pino';
import type { EventStore } from './event-store.ts';
import { freeBytes } from './free-space.ts';
import type { StoreMetrics } from './metrics.ts';
import { ReasonsSaid } from './read-errors.ts';

export interface RetentionOptions {
  store: EventStore;
  /** Keep events younger than this. */
  maxAgeMs: number;
  /** Keep the events' LMDB pages under this many bytes. */
  maxBytes: number;
  logger: Logger;
  metrics: StoreMetrics;
  intervalMs?: number;
  /** Events removed per pass of the loop (a whole block at least): small, so ingest is never held up for long. */
  chunkSize?: number;
  now?: () => number;
  /** After this long, log how many hours the size bound holds at the measured rate (default 10 minutes). */
  capacityReportMs?: number;
}

/** The live network's rate, for the start-up estimate before one is measured. */
const NETWORK_EVENTS_PER_SECOND = 2_000;
/** bench/day's all-in bytes per event, for a buffer too small to measure its own. */
const ESTIMATED_BYTES_PER_EVENT = 200;
const MEASURABLE_EVENTS = 100_000;
/**
 * Passes that trimmed are said at most this often, each line with what the passes since the line
 * before removed: a buffer at its size bound is trimmed after nearly every commit (about twice a
 * second on the live network), which was a line each, a hundred times the status line's.
 */
const TRIMMED_LOG_MS = 60_000;

/** `bytes` in the units --max-buffer-bytes is usually given in (40GB, 512MB). */
function decimalSize(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * Trims the oldest events in the background whenever either bound bites: age first, then size.
 * Works a block (or a chunk of the unsealed tail) per transaction and yields between them, so
 * commits and readers interleave. The age bound is checked every interval; the size bound also
 * after every commit, so a catch-up burst cannot outgrow it between two checks. The size bound
 * never empties the buffer: the newest events stay even if they alone exceed it.
 */
export class Retention {
  readonly #options: Required<RetentionOptions>;
  #timer: NodeJS.Timeout | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  #running: Promise<void> | undefined;
  #stopped = false;
  #committedSinceStart = 0;
  /** What passes trimmed since the last line saying so, and when that line was (see TRIMMED_LOG_MS). */
  #unsaid = { byAge: 0, bySize: 0, passes: 0, saidAtMs: -Infinity };
  /**
   * Why passes failed since the last one that did not, each said once (its numbers aside): a pass runs every interval
   * and after every commit past the size bound, and a page LMDB refuses fails them all alike (the
   * store counts each refused read, contrail_store_unreadable_reads_total).
   */
  readonly #failures = new ReasonsSaid();

  constructor(options: RetentionOptions) {
    this.#options = { intervalMs: 5_000, chunkSize: 1_024, now: Date.now, capacityReportMs: 600_000, ...options };
  }

  /**
   * How many hours of events the size bound holds at `eventsPerSecond`: with this buffer's own
   * bytes per event once it holds enough events to tell, bench/day's figure before.
   */
  hoursHeld(eventsPerSecond: number): { hours: number; bytesPerEvent: number; measured: boolean } {
    const size = this.#options.store.size();
    const measured = size.eventCount >= MEASURABLE_EVENTS;
    const bytesPerEvent = measured ? size.bytes / size.eventCount : ESTIMATED_BYTES_PER_EVENT;
    return { hours: this.#options.maxBytes / bytesPerEvent / eventsPerSecond / 3600, bytesPerEvent, measured };
  }

  /** Logs how long the bound holds (a warning when it holds less than the age bound). */
  #reportCapacity(eventsPerSecond: number, rateMeasured: boolean): void {
    const { maxAgeMs, maxBytes, logger } = this.#options;
    const { hours, bytesPerEvent, measured } = this.hoursHeld(eventsPerSecond);
    const retentionHours = maxAgeMs / 3_600_000;
    const fields = {
      maxBufferBytes: maxBytes,
      eventsPerSecond: Math.round(eventsPerSecond),
      bytesPerEvent: Math.round(bytesPerEvent),
      hoursHeld: Number(hours.toFixed(1)),
      retentionHours,
    };
    const rate = rateMeasured ? 'the measured rate' : "the live network's ~2,000 events/s";
    const size = measured ? "this buffer's bytes per event" : 'an estimated 200 bytes per event';
    const text = `--max-buffer-bytes holds about ${hours.toFixed(1)} h of events at ${rate} (${size})`;
    if (hours < retentionHours) logger.warn(fields, `${text}: less than --retention (${retentionHours} h), so the size bound trims first`);
    else logger.info(fields, text);
  }

  /**
   * Warns when the data dir's disk cannot hold what the size bound allows (its free space plus
   * the buffer's file, whose freed pages LMDB reuses): that disk fills before the size bound trims
   * anything, and from then on commits fail (ingest paused, retrying) until the age bound frees pages.
   */
  #reportDiskRoom(): void {
    const { store, maxBytes, logger } = this.#options;
    const free = freeBytes(store.location.dataDir);
    const file = store.fileBytes();
    const room = free + file;
    if (maxBytes <= room) return;
    logger.warn(
      { maxBufferBytes: maxBytes, freeBytes: free, fileBytes: file },
      `--max-buffer-bytes (${decimalSize(maxBytes)}) is more than the data dir's disk has room for (${decimalSize(free)} free, plus ${decimalSize(file)} in the buffer's file): ` +
        'the disk fills before the size bound trims anything, and then ingest pauses, retrying, until --retention frees pages; ' +
        `set --max-buffer-bytes below ${decimalSize(room)}, or give --data-dir a larger disk`,
    );
  }

  /** Trims now (in the background), then every interval, and whenever a commit outgrows the size bound. */
  start(): void {
    void this.runOnce();
    this.#reportDiskRoom();
    this.#reportCapacity(NETWORK_EVENTS_PER_SECOND, false);
    const startedAt = Date.now();
    const report = setTimeout(() => {
      const eventsPerSecond = this.#committedSinceStart / ((Date.now() - startedAt) / 1000);
      if (eventsPerSecond > 0) this.#reportCapacity(eventsPerSecond, true);
    }, this.#options.capacityReportMs);
    report.unref();
    this.#timers.push(report);
    // Run as each commit is announced, after LMDB committed it: it reads no table (size()), so a
    // page that goes bad under it cannot throw out of the commit and make ingest write it again.
    this.#options.store.onCommitted((entries) => {
      this.#committedSinceStart += entries.length;
      if (!this.#running && !this.#stopped && this.#options.store.size().bytes > this.#options.maxBytes) void this.runOnce();
    });
    this.#timer = setInterval(() => void this.runOnce(), this.#options.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const timer of this.#timers) clearTimeout(timer);
    await this.#running;
  }

  /** One pass: trims until both bounds hold (or stop() is called). */
  runOnce(): Promise<void> {
    this.#running ??= this.#trim().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #trim(): Promise<void> {
    const { store, maxAgeMs, maxBytes, chunkSize, metrics, logger, now } = this.#options;
    try {
      const cutoffUs = (now() - maxAgeMs) * 1000;
      let byAge = 0;
      for (let n; !this.#stopped && (n = await store.trimBefore(cutoffUs, chunkSize)) > 0; ) {
        byAge += n;
        metrics.eventsTrimmed.inc({ bound: 'age' }, n);
        await new Promise(setImmediate);
      }
      let bySize = 0;
      for (let size = store.size(); !this.#stopped && size.bytes > maxBytes; size = store.size()) {
        // About as many events as the excess holds (pages free whole, so this repeats until under).
        const excessEvents = Math.ceil(((size.bytes - maxBytes) / size.bytes) * size.eventCount);
        const n = await store.trimOldest(Math.max(1, Math.min(chunkSize, excessEvents)));
        if (n === 0) break;
        bySize += n;
        metrics.eventsTrimmed.inc({ bound: 'size' }, n);
        await new Promise(setImmediate);
      }
      if (byAge + bySize > 0) this.#sayTrimmed(byAge, bySize);
      if (this.#failures.any && !this.#stopped) {
        logger.warn('retention passes work again');
        this.#failures.clear();
      }
    } catch (err) {
      const reason = (err as Error).message;
      if (!this.#failures.first(reason)) return;
      logger.error({ err: reason }, 'retention pass failed; will retry (said once per reason until a pass works)');
    }
  }

  #sayTrimmed(byAge: number, bySize: number): void {
    const unsaid = this.#unsaid;
    unsaid.byAge += byAge;
    unsaid.bySize += bySize;
    unsaid.passes++;
    const nowMs = this.#options.now();
    if (nowMs - unsaid.saidAtMs < TRIMMED_LOG_MS) return;
    this.#options.logger.info({ byAge: unsaid.byAge, bySize: unsaid.bySize, passes: unsaid.passes, ...this.#options.store.size() }, 'retention trimmed the buffer');
    this.#unsaid = { byAge: 0, bySize: 0, passes: 0, saidAtMs: nowMs };
  }
}
