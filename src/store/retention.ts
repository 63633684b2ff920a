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
  /** Events removed per transaction: small, so ingest's commits are never held up for long. */
  chunkSize?: number;
  now?: () => number;
}

/**
 * Trims the oldest events in the background whenever either bound bites: age first, then size.
 * Works in small chunks and yields between them so commits and readers interleave.
 */
export class Retention {
  readonly #options: Required<RetentionOptions>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: RetentionOptions) {
    this.#options = { intervalMs: 5_000, chunkSize: 5_000, now: Date.now, ...options };
  }

  /** Trims now (in the background) and then every interval. */
  start(): void {
    void this.runOnce();
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
      }
      let bySize = 0;
      while (!this.#stopped && store.span().bytes > maxBytes) {
        const n = await store.trimOldest(chunkSize);
        if (n === 0) break;
        bySize += n;
        metrics.eventsTrimmed.inc({ bound: 'size' }, n);
      }
      if (byAge + bySize > 0) logger.info({ byAge, bySize, ...store.span() }, 'retention trimmed the buffer');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'retention pass failed; will retry');
    }
  }
}
