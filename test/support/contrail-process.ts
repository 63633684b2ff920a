/**
 * `contrail` as an operator runs it: a child process of the compiled dist/cli.js (what `npm start`
 * and the bin run; `npm run build` makes it, and the test scripts build first), for tests that
 * only a real process can show — start-up (locks, ports, disk space), kills, pauses, restarts,
 * the cluster, the e2e suite (through test/e2e/lib/contrail.mjs). It reports through its JSON
 * log on stdout, parsed as it comes so a test can wait for a line and read the port, and
 * through stderr when it refuses to start. runContrail runs a command that ends by itself (help,
 * a refused flag, `inspect`) to its end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Every contrail started here and not exited yet, so a failing test can still end what it started. */
const running = new Set<ChildProcess>();
// A test runner that dies without running after() hooks must not leave contrail behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * How long a test waits for a replay read on contrail's replay worker. As contrail runs it, the
 * worker is at nice 19, and on a machine loaded by other processes it gets next to no CPU (last
 * session's flake hunt, and this one's at a load of 20: a 20 s wait for a replay's close ran out),
 * so it reads slowly but surely; the wait is for the outcome, bounded only against a hang.
 */
export const REPLAY_ON_WORKER_WAIT_MS = 180_000;

export interface LogRecord {
  level: number;
  msg: string;
  time: number;
  [field: string]: unknown;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The environment a contrail is started with: the tests' own CONTRAIL_* never leak in (contrail reads each as a flag). */
function environment(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTRAIL_')));
  return { ...inherited, ...env };
}

/**
 * Runs `dist/cli.js …args` to its end (a command that exits by itself: --help, a refused flag,
 * `inspect`) and returns how it ended and what it printed; one still running after `timeoutMs` is
 * killed (signal SIGTERM).
 */
export function runContrail(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--max-semi-space-size=64', 'dist/cli.js', ...args], { cwd: PROJECT_ROOT, env: environment(options.env), encoding: 'utf8', timeout: options.timeoutMs ?? 60_000 });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

export interface ContrailProcessOptions {
  /** The folder it runs from (dist/, dictionaries/ and node_modules/ in it); the project by default. */
  root?: string;
  /** CONTRAIL_* variables to set: the tests' own never leak in (contrail reads each as a flag). */
  env?: Record<string, string>;
  /** `--log-level` for `serve` (info by default): debug shows what a test must see that an operator is not shown. */
  logLevel?: string;
}

export class ContrailProcess {
  readonly child: ChildProcess;
  /** Its JSON log lines (a line that is not JSON is kept as an info record's msg). */
  readonly logs: LogRecord[] = [];
  readonly stderr: string[] = [];
  /** Resolves once it exited and its last piped lines are read. */
  readonly exit: Promise<ExitStatus>;
  readonly #waiters = new Set<() => void>();
  #exited = false;
  #port: number | undefined;

  /** `contrail serve` on 127.0.0.1, on ports the OS picks, logging at info (or `options.logLevel`), then `args`. */
  static serve(args: string[], options?: ContrailProcessOptions): ContrailProcess {
    return new ContrailProcess(['serve', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--log-level', options?.logLevel ?? 'info', ...args], options);
  }

  /** Runs `dist/cli.js …args`. */
  constructor(args: string[], options: ContrailProcessOptions = {}) {
    // With the V8 flag of dist/cli.js's shebang and `npm start`: tests and benchmarks run it as production does.
    this.child = spawn(process.execPath, ['--max-semi-space-size=64', 'dist/cli.js', ...args], {
      cwd: options.root ?? PROJECT_ROOT,
      env: environment(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        record = { level: 30, msg: line, time: Date.now() };
      }
      this.logs.push(record);
      if (typeof record.msg === 'string' && record.msg.startsWith('serving /subscribe on ') && typeof record.port === 'number') this.#port = record.port;
      this.#wake();
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    this.exit = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        running.delete(this.child);
        // Let the last piped lines arrive before anyone reads logs/stderr after the exit.
        setImmediate(() => {
          this.#exited = true;
          resolve({ code, signal });
          this.#wake();
        });
      }),
    );
  }

  /** The /subscribe port (see waitServing). */
  get port(): number {
    if (this.#port === undefined) throw new Error('contrail is not serving yet');
    return this.#port;
  }

  /** The /subscribe port, once it is logged; rejects if the process exits first. */
  async waitServing(timeoutMs?: number): Promise<number> {
    await this.waitForLog('serving /subscribe on ', timeoutMs);
    return this.port;
  }

  /**
   * Resolves with the first log record (seen or future, from index `from` on) that matches — a
   * predicate, or the start of its msg; rejects if the process exits first.
   */
  waitForLog(match: string | ((record: LogRecord) => boolean), timeoutMs = 90_000, from = 0): Promise<LogRecord> {
    const matches = typeof match === 'string' ? (record: LogRecord) => typeof record.msg === 'string' && record.msg.startsWith(match) : match;
    const what = typeof match === 'string' ? `a log line starting "${match}"` : 'a matching log line';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${timeoutMs} ms:\n${this.tail()}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        settle();
      };
      const check = () => {
        const found = this.logs.slice(from).find(matches);
        if (found) finish(() => resolve(found));
        else if (this.#exited) finish(() => reject(new Error(`contrail exited before ${what}:\n${this.tail()}`)));
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Kills every contrail started here that is still running (for after() hooks on the failure path). */
  static async killAll(): Promise<void> {
    await Promise.all([...running].map((child) => new Promise((resolve) => child.once('exit', resolve).kill('SIGKILL'))));
  }

  /**
   * A graceful stop, as a supervisor does it: SIGTERM (unless it is gone already), then the exit;
   * one that does not exit within `timeoutMs` is killed and the stop fails, saying so.
   */
  async stop(timeoutMs = 30_000): Promise<ExitStatus> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exit;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    const status = await Promise.race([this.exit, timedOut]);
    clearTimeout(timer);
    if (status) return status;
    this.child.kill('SIGKILL');
    await this.exit;
    throw new Error(`contrail did not exit within ${timeoutMs} ms of SIGTERM:\n${this.tail()}`);
  }

  /** The last log records and stderr lines, for failure messages. */
  tail(lines = 20): string {
    return [...this.logs.slice(-lines).map((record) => JSON.stringify(record)), ...this.stderr.slice(-lines)].join('\n');
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }
}
