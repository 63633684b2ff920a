/**
 * `npm run bench`: every benchmark, each in a fresh process (so one's heap does not slow the
 * next), each printing its table beside its peers from the same run. Run one alone with
 * `npm run bench -- <name>` or `npx tsx bench/<name>.ts`. Numbers are medians of several
 * runs; the machine should be otherwise idle.
 *
 * Stopping: a SIGINT or SIGTERM to this process is passed on to the benchmark running and every
 * process it started (its process group: bench/startup.ts's gateway, bench/fanout.ts's clients,
 * bench/cluster.ts's servers), which then stop as they stop on their own; no later benchmark
 * starts, and this process exits with 128 + the signal's number, whatever the benchmarks returned
 * (a stopped run is not a pass). A SIGHUP (the terminal closed) is passed on as SIGTERM:
 * nats-server takes a SIGHUP as "reload the configuration". A second stop request kills the
 * group (SIGKILL), for a clean-up that hangs.
 *
 * The benchmark runs in a process group of its own, so a stop reaches it once, from here. A
 * Ctrl-C in a terminal reaches this process twice (from the terminal, and from npm passing it
 * on), and a second signal to a benchmark whose handler has run kills it before its clean-up is
 * done; so under npm the same signal again within ECHO_MS of the first is taken as npm's copy, not
 * a second request. The npm script execs this process so that npm's passing-on reaches it (`sh -c`
 * would take the signal and die without passing it on).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const benches = ['ingest', 'verify', 'store', 'fanout', 'startup', 'cluster'];
const only = process.argv[2];
/** npm passes the copy on as soon as it gets the signal: well within this, even on a loaded machine. */
const ECHO_MS = 1_000;
const underNpm = process.env.npm_lifecycle_event !== undefined;

/** The running benchmark's process group (its pid), kept after the benchmark exits: what it started may outlive it. */
let group: number | undefined;
let stop: { signal: NodeJS.Signals; at: number; copyTaken: boolean } | undefined;

function signalGroup(signal: NodeJS.Signals): void {
  try {
    if (group !== undefined) process.kill(-group, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // the group has ended already
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    const now = performance.now();
    if (!stop) {
      stop = { signal, at: now, copyTaken: false };
      signalGroup(signal === 'SIGHUP' ? 'SIGTERM' : signal);
    } else if (underNpm && !stop.copyTaken && signal === stop.signal && now - stop.at < ECHO_MS) {
      stop.copyTaken = true;
    } else {
      signalGroup('SIGKILL');
    }
  });
}

let failed = false;
for (const name of benches) {
  if (only && name !== only) continue;
  if (stop) break;
  // The same V8 flags as `npm start`, so the numbers are the gateway's.
  const running = spawn(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, import.meta.url))], {
    stdio: 'inherit',
    detached: true,
  });
  group = running.pid;
  const [code] = (await once(running, 'exit')) as [number | null];
  failed ||= code !== 0;
}
process.exit(stop ? 128 + constants.signals[stop.signal] : failed ? 1 : 0);
