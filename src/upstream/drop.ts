import type { Logger } from 'pino';
import type { Counter } from 'prom-client';

/** Why an upstream frame, or one op of a commit, was not turned into events. Used as a metric label. */
export type DropReason =
  | 'oversized'
  /** Within --max-frame-bytes, but past a bound of subscribeRepos' lexicon (a commit's ops or blocks). */
  | 'over_limit'
  | 'truncated'
  | 'malformed_cbor'
  | 'trailing_bytes'
  | 'bad_header'
  | 'body_not_map'
  | 'bad_field'
  | 'unknown_type'
  | 'bad_car'
  | 'bad_path'
  | 'bad_action'
  | 'record_missing'
  | 'cid_mismatch'
  | 'unsupported_cid'
  | 'bad_record'
  | 'not_binary';

export class DropError extends Error {
  constructor(
    readonly reason: DropReason,
    message: string,
  ) {
    super(message);
  }
}

/** Longest a relay's own string (a frame's type, an op's path, an #info or error frame's words) is logged or shown. */
const MAX_RELAY_STRING = 200;

/** A relay's string as logged or shown: cut past MAX_RELAY_STRING, saying how long it was (a frame may be megabytes). */
export function cutRelayString(text: string): string {
  return text.length <= MAX_RELAY_STRING ? text : `${text.slice(0, MAX_RELAY_STRING)}… (${text.length} characters)`;
}

/**
 * Logs without flooding: the first line of each reason, then one summary line per interval. Generic
 * in the reason so later stages (verification) log their own drops the same way, and so are the
 * relay's #info and error frames, which a relay may send as fast as any frame; `log` is given the
 * reason, to choose the line's level and words. Reasons must be a bounded set (not the relay's words);
 * the detail and the context's strings may be the relay's, and are written cut (cutRelayString).
 */
export class DropLog<Reason extends string = DropReason> {
  readonly #lastLogged = new Map<Reason, { at: number; suppressed: number }>();

  constructor(
    private readonly log: (fields: object, reason: Reason) => void,
    private readonly intervalMs = 10_000,
    private readonly nowMs: () => number = Date.now,
  ) {}

  record(reason: Reason, detail: string, context: object = {}): void {
    const now = this.nowMs();
    const last = this.#lastLogged.get(reason);
    if (last && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#lastLogged.set(reason, { at: now, suppressed: 0 });
    // Cut here, when a line is written, not for every record a flood suppresses.
    const cutContext = Object.fromEntries(Object.entries(context).map(([key, value]) => [key, typeof value === 'string' ? cutRelayString(value) : value]));
    this.log({ reason, detail: cutRelayString(detail), suppressedSinceLastLog: suppressed, ...cutContext }, reason);
  }
}

/**
 * Every drop of upstream input, wherever it is found — a frame the reader could not decode, a
 * commit op that failed its checks, a record ingest could not turn into an event — counted in
 * one counter by reason and logged through one rate-limited log, so a flood of one kind is one
 * line per interval however many stages meet it.
 */
export class DropReporter {
  readonly #log: DropLog;

  constructor(
    private readonly counter: Counter<'reason'>,
    logger: Pick<Logger, 'warn'>,
    /** How often each reason is logged at most, on which clock (ms). */
    logEvery: { intervalMs?: number; nowMs?: () => number } = {},
  ) {
    this.#log = new DropLog((fields) => logger.warn(fields, 'dropped upstream input'), logEvery.intervalMs, logEvery.nowMs);
  }

  /** Counts and logs a drop; the detail and the context's strings may hold the relay's (DropLog cuts them). */
  report(reason: DropReason, detail: string, context: Record<string, unknown> = {}): void {
    this.counter.inc({ reason });
    this.#log.record(reason, detail, context);
  }
}
