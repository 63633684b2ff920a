import { constants } from 'node:os';

/**
 * Has SIGINT and SIGTERM end this process through process.exit, with the status a shell gives a
 * process killed by them (128 + the signal's number), so that the 'exit' handlers of
 * contrail-process.ts and nats-cluster.ts kill every child it started. By default node dies of
 * either signal at once, running no handler, and its children run on: a Ctrl-C in a terminal
 * reaches them too (the whole foreground process group), but `kill`, `timeout` or a cancelled CI
 * job signals only this process.
 */
export function exitOnStopSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(128 + constants.signals[signal]));
}
