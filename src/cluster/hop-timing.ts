import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { Batch } from '../store/index.ts';

/**
 * Opt-in timing of a batch's hops through the cluster, for bench/cluster's `--hops`: started with
 * `--nats-hop-timing <file>` (a flag, like every other setting), a node writes there at exit
 * (not while it runs: the write would be one of the pauses measured) when each batch passed each
 * hop, its garbage collections and its event loop's delay, all in µs on the clock time_us is read
 * from. Without the flag — as in production — the cluster's parts hold no HopLog and each hop
 * costs one optional call that does nothing.
 *
 * On the leader a batch is cut (handed to the stream), encoded, acknowledged by the stream and
 * committed to the local buffer; on a follower it was stored by nats-server (the message's
 * timestamp), arrived, was decoded and committed. Each batch names its first and last time_us,
 * when its first and last event were read from the relay.
 */
export type HopRecord =
  | { role: 'leader'; firstUs: number; lastUs: number; events: number; cutUs: number; encodedUs?: number; ackedUs?: number; committedUs?: number }
  | { role: 'follower'; firstUs: number; lastUs: number; events: number; storedUs: number; arrivedUs: number; decodedUs?: number; committedUs?: number };

export interface HopFile {
  batches: HopRecord[];
  /** Each collection: when it started and how long it took, µs. */
  gc: Array<{ startUs: number; durationUs: number; kind: number }>;
  /** The event loop's delay over the node's life, µs. */
  loopDelayUs: { p50: number; p99: number; max: number };
}

export const nowUs = (): number => (performance.timeOrigin + performance.now()) * 1000;

export class HopLog {
  readonly #batches: HopRecord[] = [];
  readonly #byBatch = new WeakMap<Batch, HopRecord>();
  readonly #gc: HopFile['gc'] = [];
  readonly #loop = monitorEventLoopDelay();

  constructor(private readonly file: string) {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        this.#gc.push({ startUs: (performance.timeOrigin + entry.startTime) * 1000, durationUs: entry.duration * 1000, kind: (entry as unknown as { detail: { kind: number } }).detail.kind });
      }
    }).observe({ entryTypes: ['gc'] });
    this.#loop.enable();
    process.once('exit', () => this.#write());
  }

  /** The leader handed a batch to the stream. */
  cut(batch: Batch): void {
    const first = batch.entries[0];
    if (!first) return;
    const record: HopRecord = { role: 'leader', firstUs: first.timeUs, lastUs: batch.entries.at(-1)!.timeUs, events: batch.entries.length, cutUs: nowUs() };
    this.#byBatch.set(batch, record);
    this.#batches.push(record);
  }

  /** A follower read a batch from the stream; `storedNs` is the message's stream timestamp. */
  arrived(batch: Batch, storedNs: number, arrivedUs: number): void {
    const first = batch.entries[0];
    if (!first) return;
    const record: HopRecord = { role: 'follower', firstUs: first.timeUs, lastUs: batch.entries.at(-1)!.timeUs, events: batch.entries.length, storedUs: storedNs / 1000, arrivedUs, decodedUs: nowUs() };
    this.#byBatch.set(batch, record);
    this.#batches.push(record);
  }

  mark(batch: Batch, hop: 'encodedUs' | 'ackedUs' | 'committedUs'): void {
    const record = this.#byBatch.get(batch) as Record<string, number> | undefined;
    if (record) record[hop] = nowUs();
  }

  #write(): void {
    const loopDelayUs = { p50: this.#loop.percentile(50) / 1000, p99: this.#loop.percentile(99) / 1000, max: this.#loop.max / 1000 };
    const file: HopFile = { batches: this.#batches, gc: this.#gc, loopDelayUs };
    writeFileSync(this.file, JSON.stringify(file));
  }
}
