// contrail as an operator runs it: the compiled CLI (dist/cli.js, built by `npm run test:e2e`) in
// a child process, configured by flags, reporting where it listens through its pino JSON log, stopped with SIGTERM.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const HOST = '127.0.0.1';

/** Every child started here, so a failing test can still kill what it started (see killAll). */
const running = new Set();

/**
 * Starts `contrail serve` and resolves once both its /subscribe and /metrics ports are logged.
 * @param {{upstream: string, dataDir: string, extraArgs?: string[], startTimeoutMs?: number}} options
 */
export async function startContrail({ upstream, dataDir, extraArgs = [], startTimeoutMs = 30_000 }) {
  const args = ['--max-semi-space-size=64', 'dist/cli.js', 'serve', '--upstream', upstream, '--data-dir', dataDir];
  args.push('--port', '0', '--metrics-port', '0', '--host', HOST, '--log-level', 'info', ...extraArgs);
  // contrail takes every CONTRAIL_* environment variable as a flag: the caller's environment
  // must not reconfigure (or, with an unknown name, stop) the contrail under test.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTRAIL_')));
  const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });

  // Keep every log line: they are the evidence when something goes wrong.
  const logs = [];
  const waiters = new Set();
  const onLine = (stream) => (line) => {
    if (line.trim() === '') return;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = { stream, text: line };
    }
    logs.push(entry);
    for (const waiter of waiters) waiter(entry);
  };
  splitLines(child.stdout, onLine('stdout'));
  splitLines(child.stderr, onLine('stderr'));

  /** Resolves with the first log entry (already seen or future) that matches. */
  const waitForLog = (predicate, what, timeoutMs = startTimeoutMs) =>
    new Promise((resolve, reject) => {
      const seen = logs.find(predicate);
      if (seen) return resolve(seen);
      const done = (fn, value) => {
        waiters.delete(check);
        clearTimeout(timer);
        fn(value);
      };
      const check = (entry) => predicate(entry) && done(resolve, entry);
      const timer = setTimeout(() => done(reject, new Error(`contrail did not log ${what} within ${timeoutMs} ms\n${tail(logs)}`)), timeoutMs);
      waiters.add(check);
      exited.then(({ code, signal }) => done(reject, new Error(`contrail exited (code ${code}, signal ${signal}) before logging ${what}\n${tail(logs)}`)));
    });

  let port;
  let metricsPort;
  try {
    port = (await waitForLog((e) => typeof e.msg === 'string' && e.msg.startsWith('serving /subscribe on ') && e.port > 0, '"serving /subscribe"')).port;
    metricsPort = (await waitForLog((e) => e.msg === 'serving Prometheus metrics at /metrics' && e.port > 0, '"serving Prometheus metrics"')).port;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  return {
    port,
    metricsPort,
    httpUrl: `http://${HOST}:${port}`,
    wsUrl: `ws://${HOST}:${port}`,
    logs,
    waitForLog,
    /** Graceful stop, as a supervisor does it: SIGTERM, then the exit code (SIGKILL after the timeout). */
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      let timer;
      const timedOut = new Promise((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
      const result = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (result) return result;
      child.kill('SIGKILL');
      await exited;
      throw new Error(`contrail did not exit within ${timeoutMs} ms of SIGTERM\n${tail(logs)}`);
    },
  };
}

/** Kills every contrail child that is still running (for after() hooks on the failure path). */
export async function killAll() {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGKILL');
        }),
    ),
  );
}

// A test runner that dies without running after() must not leave contrail behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Waits until contrail says it is ready (upstream connected, store healthy), bounded. */
export async function waitReady(httpUrl, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${httpUrl}/ready`);
      last = `${response.status} ${(await response.text()).trim()}`;
      if (response.status === 200) return;
    } catch (err) {
      last = err.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`contrail was not ready within ${timeoutMs} ms (last /ready: ${last})`);
}

export function tail(logs, count = 30) {
  return logs
    .slice(-count)
    .map((entry) => JSON.stringify(entry))
    .join('\n');
}

function splitLines(stream, onLine) {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  });
  stream.on('end', () => buffered && onLine(buffered));
}
