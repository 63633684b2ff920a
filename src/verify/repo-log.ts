import type { Logger } from 'pino';

/**
 * The Verifier's per-repo lines (out of sync, resync failed or retried, and a message it failed to
 * handle unexpectedly), and its lines for reading paused, without flooding: a PLC directory or
 * PDS host that fails for every repo — or
 * a bug that hits every message — would otherwise log a line or two per repo or message, thousands
 * a minute on the live network. The first line of each message is logged, then at most
 * one per interval, carrying how many lines of that message it stands for since the last
 * (`linesSinceLastLog`, this one included); the metrics count every repo.
 */
export class RepoLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Pick<Logger, 'error' | 'warn' | 'info'>,
    private readonly intervalMs = 10_000,
    private readonly nowMs: () => number = Date.now,
  ) {}

  error(fields: object, message: string): void {
    this.#tell('error', fields, message);
  }

  warn(fields: object, message: string): void {
    this.#tell('warn', fields, message);
  }

  info(fields: object, message: string): void {
    this.#tell('info', fields, message);
  }

  #tell(level: 'error' | 'warn' | 'info', fields: object, message: string): void {
    const now = this.nowMs();
    const last = this.#last.get(message);
    if (last && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.#last.set(message, { at: now, suppressed: 0 });
    this.logger[level]({ ...fields, linesSinceLastLog: (last?.suppressed ?? 0) + 1 }, message);
  }
}
