/**
 * `contrail` as an operator runs it: a child process started through the CLI, reporting through
 * its JSON log on stdout and one line on stderr when it refuses to start. For the start-up tests
 * (locks, ports, disk space, environment) that only a real process can show.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LogEntry {
  level?: number;
  msg?: string;
  [field: string]: unknown;
}

export interface ContrailProcess {
  readonly child: ChildProcess;
  readonly logs: LogEntry[];
  readonly stderr: string[];
  /** Resolves with the first log entry (seen or future) that matches; rejects if the process exits first. */
  waitForLog(predicate: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** The /subscribe port, once it is logged. */
  port(): Promise<number>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node --import tsx src/cli.ts …args` from `root`, with only the given CONTRAIL_* variables. */
export function startContrail(args: string[], options: { root?: string; env?: Record<string, string> } = {}): ContrailProcess {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTRAIL_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: options.root ?? PROJECT_ROOT,
    env: { ...inherited, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogEntry[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogEntry);
    } catch {
      logs.push({ msg: line });
    }
    for (const wake of waiters) wake();
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      // Let the last piped lines arrive before anyone reads logs/stderr after the exit.
      setImmediate(() => {
        resolve({ code, signal });
        for (const wake of waiters) wake();
      });
    }),
  );
  let exited = false;
  void exit.then(() => (exited = true));

  const waitForLog = (predicate: (entry: LogEntry) => boolean, timeoutMs = 90_000) =>
    new Promise<LogEntry>((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(new Error(`no matching log line within ${timeoutMs} ms:\n${describe()}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      const check = () => {
        const found = logs.find(predicate);
        if (found) finish(() => resolve(found));
        else if (exited) finish(() => reject(new Error(`contrail exited before the expected log line:\n${describe()}`)));
      };
      waiters.add(check);
      check();
    });
  const describe = () => [...logs.slice(-20).map((entry) => JSON.stringify(entry)), ...stderr].join('\n');

  return {
    child,
    logs,
    stderr,
    waitForLog,
    async port() {
      const entry = await waitForLog((e) => typeof e.msg === 'string' && e.msg.startsWith('serving /subscribe on '));
      return entry.port as number;
    },
    exit,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      return exit;
    },
  };
}
