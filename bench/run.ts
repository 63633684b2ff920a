/**
 * `npm run bench`: every benchmark, each in a fresh process (so one's heap does not slow the
 * next), each printing its table beside its peers from the same run. Run one alone with
 * `npm run bench -- <name>` or `npx tsx bench/<name>.ts`. Numbers are medians of several
 * runs; the machine should be otherwise idle.
 *
 * A SIGINT or SIGTERM to this process is passed on to the benchmark running, which then stops as
 * it stops on its own (bench/cluster.ts kills its servers), no later one starts, and this process
 * exits with its status. The benchmark runs in a process group of its own, so that signal reaches
 * it once, from here: a Ctrl-C in a terminal reaches this process twice (from the terminal, and
 * from npm passing it on), and a second signal to a benchmark whose handler has run kills it
 * before its clean-up is done. The npm script execs this process so that npm's own passing-on
 * reaches it (`sh -c` would take the signal and die without passing it on).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const benches = ['ingest', 'verify', 'store', 'fanout', 'startup', 'cluster'];
const only = process.argv[2];

let running: ReturnType<typeof spawn> | undefined;
let stopSignal: NodeJS.Signals | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopSignal) return;
    stopSignal = signal;
    running?.kill(signal);
  });
}

let failed = false;
for (const name of benches) {
  if (only && name !== only) continue;
  if (stopSignal) break;
  // The same V8 flags as `npm start`, so the numbers are the gateway's.
  running = spawn(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, import.meta.url))], {
    stdio: 'inherit',
    detached: true,
  });
  const [code, signal] = (await once(running, 'exit')) as [number | null, NodeJS.Signals | null];
  running = undefined;
  // A shell's status for a process a signal killed: 128 + the signal's number.
  const status = code ?? 128 + constants.signals[signal!];
  if (stopSignal) process.exit(status);
  failed ||= status !== 0;
}
process.exit(stopSignal ? 128 + constants.signals[stopSignal] : failed ? 1 : 0);
