/**
 * What the held window saved with the upstream cursor costs each commit: a real Ingester and
 * EventStore committing one #identity event at a time while `held` repos are held (an earlier
 * stage's heldBelow/heldRepos, as the Verifier's while DIDs resolve), against none held. CPU
 * per commit (this process's user + system time), and the saved window's size as stored (JSON
 * bytes, as it also rides a cluster batch's last NATS part). Medians of RUNS runs.
 * `npx tsx bench/held-cursor.ts [held counts...]`
 */
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CursorClock } from '../src/events/index.ts';
import { createStoreMetrics, EventStore, Ingester } from '../src/store/index.ts';
import { createUpstreamMetrics, DropReporter } from '../src/upstream/index.ts';

const COMMITS = 1_000;
const RUNS = 5;
const counts = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [0, 256, 1_000, 10_000];

async function run(heldCount: number): Promise<{ cpuUsPerCommit: number; savedBytes: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'contrail-bench-held-'));
  const store = new EventStore({ dataDir, hotLogBytes: 1 << 20 });
  const held: [string, number][] = Array.from({ length: heldCount }, (_, i) => [`did:plc:${String(i).padStart(24, 'h')}`, 2 + i]);
  const registry = new Registry();
  const logger = pino({ level: 'silent' });
  const ingester = new Ingester({
    store,
    clock: new CursorClock(0),
    upstreamUrl: 'wss://relay.example',
    logger,
    metrics: createStoreMetrics(registry),
    drops: new DropReporter(createUpstreamMetrics(registry).drops, logger),
    onBackpressure: () => {},
    heldBelow: () => 2,
    heldRepos: () => held,
  });
  const start = process.cpuUsage();
  for (let seq = 100_000; seq < 100_000 + COMMITS; seq++) {
    ingester.handle({ type: 'identity', seq, did: 'did:plc:benchbenchbenchbenchbenc', time: new Date().toISOString() });
    await ingester.flush();
  }
  const used = process.cpuUsage(start);
  const savedBytes = JSON.stringify(store.upstreamCursor ?? {}).length;
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
  return { cpuUsPerCommit: (used.user + used.system) / COMMITS, savedBytes };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log('held repos | CPU µs per commit (median of %d × %d commits) | saved window, JSON bytes', RUNS, COMMITS);
for (const heldCount of counts) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(heldCount));
  console.log(`${heldCount} | ${median(runs.map((r) => r.cpuUsPerCommit)).toFixed(0)} | ${runs[0]!.savedBytes}`);
}
