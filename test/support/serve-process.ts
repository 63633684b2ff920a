/**
 * `contrail serve` as a child process on 127.0.0.1, for tests that kill, pause or restart it:
 * its JSON log lines are parsed as they come, so a test can wait for a line and read the port.
 * It runs the compiled dist/cli.js (what `npm start` runs; `npm run build` makes it, and the
 * test scripts build first), which also starts in a third of tsx's time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { waitUntil } from './subscribe-client.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LogRecord {
  level: number;
  msg: string;
  time: number;
  [field: string]: unknown;
}

export class ServeProcess {
  readonly logs: LogRecord[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #child: ChildProcess;
  #port: number | undefined;

  constructor(args: string[]) {
    this.#child = spawn(
      process.execPath,
      // With the V8 flag of dist/cli.js's shebang and `npm start`: tests and benchmarks run it as production does.
      ['--max-semi-space-size=64', 'dist/cli.js', 'serve', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--log-level', 'info', ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: withoutContrailVariables() },
    );
    this.exited = new Promise((resolve) => this.#child.on('exit', (code, signal) => resolve({ code, signal })));
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as LogRecord;
        this.logs.push(record);
        if (record.msg.startsWith('serving /subscribe on ') && typeof record.port === 'number') this.#port = record.port;
      } catch {
        this.logs.push({ level: 30, msg: line, time: Date.now() });
      }
    });
    createInterface({ input: this.#child.stderr! }).on('line', (line) => this.logs.push({ level: 60, msg: line, time: Date.now() }));
  }

  get pid(): number {
    return this.#child.pid!;
  }

  get port(): number {
    if (this.#port === undefined) throw new Error('contrail is not serving yet');
    return this.#port;
  }

  async waitServing(timeoutMs = 60_000): Promise<number> {
    await waitUntil(() => this.#port !== undefined || this.#child.exitCode !== null, 'contrail to serve', timeoutMs);
    if (this.#port === undefined) throw new Error(`contrail exited before serving:\n${this.tail()}`);
    return this.#port;
  }

  /** Resolves with the first log line (from `from` on) whose message starts with `text`. */
  async waitLog(text: string, timeoutMs = 60_000, from = 0): Promise<LogRecord> {
    let found: LogRecord | undefined;
    await waitUntil(() => (found = this.logs.slice(from).find((record) => record.msg.startsWith(text))) !== undefined, `log "${text}"\n${this.tail()}`, timeoutMs);
    return found!;
  }

  signal(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  /** Graceful stop (SIGTERM); a process already gone resolves at once. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
    await this.exited;
  }

  tail(lines = 15): string {
    return this.logs
      .slice(-lines)
      .map((record) => `${record.level} ${record.msg}${record.err ? ` (${String(record.err)})` : ''}`)
      .join('\n');
  }
}

/** contrail reads every CONTRAIL_* variable as a flag: the tests' own environment must not leak in. */
function withoutContrailVariables(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTRAIL_')));
}
