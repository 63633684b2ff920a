/**
 * A FirehoseClient wired to a FakeRelay the way the gateway wires it, with its own metrics
 * registry and a logger whose lines the test can read (capturingLogger, for any logger a test
 * reads); and the real consumer, an Ingester over an EventStore in a temp dir (openIngester, or
 * the whole rig with its client: startIngestRig) or over a store the test gives
 * (ingesterUnderTest), for tests that check what ends up stored.
 */
import { pino, type Level, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { CursorClock } from '../../src/events/clock.ts';
import { EventStore } from '../../src/store/event-store.ts';
import { Ingester, type IngesterOptions } from '../../src/store/ingest.ts';
import { createStoreMetrics } from '../../src/store/metrics.ts';
import { DropReporter } from '../../src/upstream/drop.ts';
import { FirehoseClient, type FirehoseClientOptions } from '../../src/upstream/firehose.ts';
import type { UpstreamMessage } from '../../src/upstream/messages.ts';
import { createUpstreamMetrics, type UpstreamMetrics } from '../../src/upstream/metrics.ts';
import { FakeRelay } from './fake-relay.ts';
import { tempDir } from './gateway.ts';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface ClientHarness {
  client: FirehoseClient;
  registry: Registry;
  metrics: UpstreamMetrics;
  logger: Logger;
  logs: LogLine[];
  /** Every message the client handed on, in order (also when a custom onMessage is given). */
  messages: UpstreamMessage[];
}

/** A logger whose lines, parsed, are pushed onto `logs`, from `level` up; `Line` is the shape the test reads them as. */
export function capturingLogger<Line extends object = LogLine>(logs: Line[], level: Level = 'debug'): Logger {
  return pino({ level }, { write: (line: string) => void logs.push(JSON.parse(line) as Line) });
}

/** capturingLogger from info up, with the lines it keeps. */
export function loggerKeepingLines<Line extends object = LogLine>(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  return { logger: capturingLogger(lines, 'info'), lines };
}

export function startClient(
  url: string,
  options: Partial<Omit<FirehoseClientOptions, 'url' | 'logger'>> & { registry?: Registry } = {},
): ClientHarness {
  const registry = options.registry ?? new Registry();
  const metrics = options.metrics ?? createUpstreamMetrics(registry);
  const logs: LogLine[] = [];
  const logger = capturingLogger(logs);
  const messages: UpstreamMessage[] = [];
  const { onMessage, registry: _registry, metrics: _metrics, drops, ...rest } = options;
  const client = new FirehoseClient({
    url,
    logger,
    metrics,
    drops: drops ?? new DropReporter(metrics.drops, logger),
    resumeCursor: () => undefined,
    ...rest,
    onMessage: (message) => {
      messages.push(message);
      onMessage?.(message);
    },
  });
  client.start();
  return { client, registry, metrics, logger, logs, messages };
}

/** The value of one counter or gauge sample (0 when that label set was never touched). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const sample = values.find((v) => Object.entries(labels).every(([key, value]) => v.labels[key] === value));
  return sample?.value ?? 0;
}

/** The seqs of the messages that carry one, in arrival order. */
export function seqsOf(messages: UpstreamMessage[]): number[] {
  return messages.flatMap((m) => ('seq' in m ? [m.seq] : []));
}

export interface IngestHarness {
  store: EventStore;
  ingester: Ingester;
  registry: Registry;
  upstreamMetrics: UpstreamMetrics;
  /** The drop reporter a client feeding this ingester shares, as the gateway's reader does. */
  drops: DropReporter;
  close(): Promise<void>;
}

/**
 * A real Ingester over a real EventStore (LMDB in `dataDir`), as the gateway builds them. Pass
 * the client's registry and metrics to share them. close() flushes, then closes the store.
 */
export function openIngester(
  dataDir: string,
  upstreamUrl: string,
  shared: { registry?: Registry; upstreamMetrics?: UpstreamMetrics; logger?: Logger; onBackpressure?: (paused: boolean) => void } = {},
): IngestHarness {
  const registry = shared.registry ?? new Registry();
  const upstreamMetrics = shared.upstreamMetrics ?? createUpstreamMetrics(registry);
  const logger = shared.logger ?? pino({ level: 'silent' });
  const drops = new DropReporter(upstreamMetrics.drops, logger);
  const store = new EventStore({ dataDir, hotLogBytes: 8 * 1024 * 1024 });
  const ingester = new Ingester({
    store,
    clock: new CursorClock(store.timeUsFloor),
    upstreamUrl,
    logger,
    metrics: createStoreMetrics(registry),
    drops,
    onBackpressure: shared.onBackpressure ?? (() => {}),
  });
  return {
    store,
    ingester,
    registry,
    upstreamMetrics,
    drops,
    close: async () => {
      await ingester.flush();
      await store.close();
    },
  };
}

export interface IngestRig {
  relay: FakeRelay;
  ingest: IngestHarness;
  /** What the Ingester logged. */
  ingestLogs: LogLine[];
  harness: ClientHarness;
  registry: Registry;
}

/**
 * Relay, store, Ingester and client wired as the gateway wires them (the client backing off from
 * 10 ms to 50 ms; the Ingester's log lines kept). The relay and data dir can be given to reuse
 * them; everything is torn down after the test.
 */
export async function startIngestRig(
  t: { after: (fn: () => Promise<void>) => void },
  options: { relay?: FakeRelay; dataDir?: string; pingIntervalMs?: number } = {},
): Promise<IngestRig> {
  const relay = options.relay ?? (await FakeRelay.start());
  const dir = options.dataDir ? undefined : tempDir();
  const registry = new Registry();
  const ingestLogs: LogLine[] = [];
  const ingest = openIngester(options.dataDir ?? dir!.path, relay.url, { registry, logger: capturingLogger(ingestLogs) });
  const harness = startClient(relay.url, {
    registry,
    metrics: ingest.upstreamMetrics,
    drops: ingest.drops,
    resumeCursor: () => ingest.ingester.resumeCursor(),
    onMessage: (message) => ingest.ingester.handle(message),
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    pingIntervalMs: options.pingIntervalMs,
  });
  t.after(async () => {
    await harness.client.stop();
    await ingest.close();
    if (!options.relay) await relay.stop();
    dir?.remove();
  });
  return { relay, ingest, ingestLogs, harness, registry };
}

export interface IngesterUnderTest {
  ingester: Ingester;
  metrics: ReturnType<typeof createStoreMetrics>;
  logs: LogLine[];
  backpressure: boolean[];
  health: boolean[];
  skipped(reason: string): Promise<number>;
  commits(): Promise<number>;
}

/**
 * A real Ingester over `store` whose cursor is saved against `upstreamUrl`, its clock from the
 * store's last event (openIngester's, as the gateway's, starts at `store.timeUsFloor`), with
 * metrics of its own, its log lines kept, and each backpressure and store-health change recorded in
 * order; `options` replace any of the Ingester's options.
 */
export function ingesterUnderTest(store: EventStore, upstreamUrl: string, options: Partial<IngesterOptions> = {}): IngesterUnderTest {
  const registry = new Registry();
  const metrics = createStoreMetrics(registry);
  const logs: IngesterUnderTest['logs'] = [];
  const logger = capturingLogger(logs);
  const backpressure: boolean[] = [];
  const health: boolean[] = [];
  const ingester = new Ingester({
    store,
    clock: new CursorClock(store.lastTimeUs),
    upstreamUrl,
    logger,
    metrics,
    drops: new DropReporter(createUpstreamMetrics(registry).drops, logger),
    onBackpressure: (paused) => backpressure.push(paused),
    onStoreHealth: (healthy) => health.push(healthy),
    ...options,
  });
  return {
    ingester,
    metrics,
    logs,
    backpressure,
    health,
    async skipped(reason) {
      return (await metrics.skipped.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
    },
    async commits() {
      return (await metrics.commits.get()).values.find((v) => v.metricName === 'contrail_store_commit_seconds_count')?.value ?? 0;
    },
  };
}

/** Every stored event, oldest first, parsed. */
export function storedEvents(store: EventStore): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  let position = 0;
  for (;;) {
    const { entries, position: next } = store.readAfter(position, { maxEntries: 1_000 });
    if (next === position) return out;
    position = next;
    for (const entry of entries) out.push(JSON.parse(entry.json.toString()));
  }
}
