import type { Logger } from 'pino';
import type { EventStore } from './event-store.ts';
import type { StoreMetrics } from './metrics.ts';

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
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: RetentionOptions) {
    this.#options = { intervalMs: 5_000, chunkSize: 1_024, now: Date.now, ...options };
  }

  /** Trims now (in the background), then every interval, and whenever a commit outgrows the size bound. */
  start(): void {
    void this.runOnce();
    this.#options.store.onCommitted(() => {
      if (!this.#running && !this.#stopped && this.#options.store.span().bytes > this.#options.maxBytes) void this.runOnce();
    });
    this.#timer = setInterval(() => void this.runOnce(), this.#options.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
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
      for (let span = store.span(); !this.#stopped && span.bytes > maxBytes; span = store.span()) {
        // About as many events as the excess holds (pages free whole, so this repeats until under).
        const excessEvents = Math.ceil(((span.bytes - maxBytes) / span.bytes) * span.eventCount);
        const n = await store.trimOldest(Math.max(1, Math.min(chunkSize, excessEvents)));
        if (n === 0) break;
        bySize += n;
        metrics.eventsTrimmed.inc({ bound: 'size' }, n);
        await new Promise(setImmediate);
      }
      if (byAge + bySize > 0) logger.info({ byAge, bySize, ...store.span() }, 'retention trimmed the buffer');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'retention pass failed; will retry');
    }
  }
}
