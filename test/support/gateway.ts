/** Starts an in-process gateway on loopback against a given upstream, for tests and benchmarks. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DEFAULT_DICTIONARY, type GatewayConfig } from '../../src/config.ts';
import { DEFAULT_REPLAY_LEVEL } from '../../src/server/index.ts';
import { startGateway, type Gateway, type GatewayTuning } from '../../src/gateway.ts';

export function tempDir(prefix = 'contrail-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function testConfig(upstream: string, dataDir: string, overrides: Partial<GatewayConfig> = {}): GatewayConfig {
  return {
    upstream,
    ingestCollections: [],
    host: '127.0.0.1',
    port: 0,
    metricsHost: '127.0.0.1',
    metricsPort: 0,
    dataDir,
    logLevel: 'silent',
    retentionMs: 24 * 3_600_000,
    maxBufferBytes: 1e9,
    hotCacheBytes: 16 * 1024 * 1024,
    replayWorkers: 1,
    maxFrameBytes: 5_000_000,
    transport: 'auto',
    zstdDictionary: DEFAULT_DICTIONARY,
    zstdReplayLevel: DEFAULT_REPLAY_LEVEL,
    maxSubscribers: 10_000,
    maxConnectionsPerIp: 10_000,
    maxDeflateSubscribers: 200,
    slowConsumerWindowMs: 60_000,
    trustProxy: 0,
    fsync: false,
    verify: 'off',
    plcUrl: 'http://127.0.0.1:1',
    allowPrivateEndpoints: true,
    identityCacheEntries: 1000,
    backfill: true,
    backfillMaxRepoBytes: 64 * 1024 * 1024,
    backfillTimeoutMs: 10_000,
    backfillPerHost: 4,
    backfillConcurrency: 8,
    backfillCacheBytes: 16 * 1024 * 1024,
    backfillCacheTtlMs: 60_000,
    // Checks on the main thread: from source a worker compiles its modules before its first answer,
    // which on a loaded machine outlasts a test's waits (test/verify.test.ts starts pools first).
    verifyWorkers: 0,
    verifyResyncs: 4,
    verifyResyncMaxBytes: 64 * 1024 * 1024,
    verifyResyncTimeoutMs: 10_000,
    verifyResyncAttempts: 3,
    verifyResyncRetryMs: 30_000,
    ...overrides,
  };
}

export async function startTestGateway(
  upstream: string,
  dataDir: string,
  overrides: Partial<GatewayConfig> = {},
  tuning: GatewayTuning = {},
): Promise<Gateway> {
  const config = testConfig(upstream, dataDir, overrides);
  // Replay workers at the process's priority, not nice 19 as in production: on a machine that other
  // processes load, a nice-19 thread gets next to no CPU and every replay a test waits for crawls
  // (test/replay-workers.test.ts checks both). bench/replay-live, which measures what nice 19 does
  // for live latency, asks for production's.
  const gateway = await startGateway(config, { logger: pino({ level: config.logLevel }), lowerReplayWorkerPriority: false, ...tuning });
  // From source a replay worker compiles its modules when it starts (~1 CPU-second): done before
  // a test's waits, so that CPU is not taken from the gateway while a test measures its pace.
  await gateway.server.replayPool?.ready().catch(() => {});
  return gateway;
}
