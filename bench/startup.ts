/**
 * Start-up time and idle memory: the compiled build (dist/cli.js, what `npm start`, the bin and
 * the Docker image run) beside the same CLI run from source through tsx, measured the same way
 * in the same run. Start-up is the time from spawn until GET /health answers 200; idle RSS is
 * the process's resident set (/proc/<pid>/status VmRSS) after it has sat idle for 3 s with an
 * empty buffer and an upstream that refuses connections. Runs alternate between the two; medians.
 * Build first (`npm run build`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { exitOnStopSignals } from '../test/support/exit-on-signals.ts';
import { median, printTable, type Row } from './table.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUNS = 7;
const IDLE_MS = 3_000;
const CASES: [[string, string[]], ...Array<[string, string[]]>] = [
  ['compiled: node dist/cli.js', ['--max-semi-space-size=64', 'dist/cli.js']],
  ['source: node --import tsx src/cli.ts', ['--max-semi-space-size=64', '--import', 'tsx', 'src/cli.ts']],
];

/** The gateway being measured and its data dir. A stop signal ends this process through process.exit, where measure's finally does not run: the 'exit' handler ends them instead. */
let measuring: { child: ChildProcess; dataDir: string } | undefined;
process.once('exit', () => {
  if (!measuring) return;
  measuring.child.kill('SIGKILL');
  rmSync(measuring.dataDir, { recursive: true, force: true });
});
exitOnStopSignals();

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

async function measure(args: string[]): Promise<{ startupMs: number; rssMb: number }> {
  // The port first: a stop while it is found leaves no data dir behind.
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'contrail-startup-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTRAIL_') && name !== 'NODE_OPTIONS'));
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [...args, 'serve', '--upstream', 'ws://127.0.0.1:9', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', String(port), '--metrics-port', '0', '--log-level', 'warn'],
    { cwd: ROOT, env, stdio: 'ignore' },
  );
  measuring = { child, dataDir };
  try {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
        (response) => response.status === 200,
        () => false,
      );
      if (ok) break;
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
      await sleep(5);
    }
    const startupMs = performance.now() - started;
    await sleep(IDLE_MS);
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
    return { startupMs, rssMb: rssKb / 1024 };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    rmSync(dataDir, { recursive: true, force: true });
    measuring = undefined;
  }
}

if (!existsSync(join(ROOT, 'dist/cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first');
const results = new Map<string, Array<{ startupMs: number; rssMb: number }>>(CASES.map(([name]) => [name, []]));
for (let run = 0; run < RUNS; run++) {
  for (const [name, args] of CASES) results.get(name)!.push(await measure(args));
}
const compiled = median(results.get(CASES[0][0])!.map((r) => r.startupMs));
const rows: Row[] = CASES.map(([name]) => {
  const runs = results.get(name)!;
  const startupMs = median(runs.map((r) => r.startupMs));
  return {
    case: name,
    'start-up ms': Math.round(startupMs),
    'idle RSS MB': Math.round(median(runs.map((r) => r.rssMb))),
    'start-up × compiled': (startupMs / compiled).toFixed(2),
  };
});
printTable(`Start-up (spawn → GET /health 200) and idle RSS after ${IDLE_MS / 1000} s, medians of ${RUNS} alternating runs`, rows);
