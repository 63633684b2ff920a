import type { ClientRequest, IncomingMessage } from 'node:http';
import type { ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import type { Logger } from 'pino';
import { retryAfter } from '../identity/index.ts';
import { backoffDelay } from './backoff.ts';
import { DropError, DropLog, cutRelayString, type DropReporter } from './drop.ts';
import { decodeFrame } from './frame.ts';
import { parseMessage, type UpstreamMessage } from './messages.ts';
import type { UpstreamMetrics } from './metrics.ts';
import { MessagePrefix, PREFIX_BYTES, seqFromPrefix } from './message-prefix.ts';
import { SeqsBehind } from './seqs-behind.ts';
import { NothingKeptRun } from './nothing-kept-run.ts';
import { redactUrl } from './url.ts';

/** subscribeRepos's error names (its lexicon); any other counts, and is logged, as 'other'. */
type ErrorKind = 'FutureCursor' | 'ConsumerTooSlow' | 'other';
const KNOWN_ERRORS: ReadonlySet<string> = new Set<ErrorKind>(['FutureCursor', 'ConsumerTooSlow']);

export interface FirehoseClientOptions {
  /** The subscribeRepos WebSocket URL (see normalizeUpstreamUrl). */
  url: string;
  /** The seq to resume after, asked before every connect; undefined = start live. */
  resumeCursor: () => number | undefined;
  /** Called in frame order for every message that decoded. */
  onMessage: (message: UpstreamMessage) => void;
  logger: Logger;
  metrics: UpstreamMetrics;
  /** Counts and logs what could not be decoded, shared with later stages (see DropReporter). */
  drops: DropReporter;
  maxFrameBytes?: number;
  pingIntervalMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A dial that has not completed the WebSocket handshake this long after it began is abandoned (and retried). */
  handshakeTimeoutMs?: number;
  /** How long frames may all come at or below the highest seq read before it is reported (seqsBehind). */
  seqsBehindMs?: number;
  /** How long frames may all keep nothing (undecoded, commits with every op dropped, #info and error frames) before it is reported (notIngesting). */
  nothingKeptMs?: number;
  /**
   * A message begun must complete within this long of reading (unpaused) time, judged at each ping
   * (default 60 s), or the connection is dropped: ws sees nothing of a message until it ends, and a
   * relay's pongs between endless fragments answer every ping.
   */
  messageTimeoutMs?: number;
  /** A connection that answered a ping and lived this long resets the backoff (default 10 s). */
  healthyAfterMs?: number;
}

const DEFAULT_MAX_FRAME_BYTES = 5 * 1024 * 1024;
/**
 * Frames above --max-frame-bytes but below this are read whole, then dropped. Larger ones close the
 * socket once their first bytes are in (ws cannot skip a message unread); the client then resumes
 * after their seq (message-prefix.ts, which judges this limit: ws is given none).
 */
export const SOCKET_MAX_PAYLOAD = 64 * 1024 * 1024;
/** The longest Retry-After a refused handshake is honoured for: a relay cannot park contrail for a day. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;
/** ws's error for a frame announcing more than 2^53 - 1 bytes, which it refuses whatever its maxPayload. */
const TOO_LARGE_FOR_THE_SOCKET = 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH';

export class FirehoseClient {
  readonly #options: Required<FirehoseClientOptions>;
  #socket: WebSocket | undefined;
  #stopped = true;
  #paused = false;
  #failures = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #heardSincePing = true;
  #problem: string | undefined = 'connecting for the first time';
  /**
   * The seq of a frame too large to read: reconnects resume after it while the consumer's cursor is
   * below it. Forgotten once the consumer's cursor reaches it, or when the upstream answers
   * FutureCursor (its seqs restarted: the skipped seq no longer names a frame it holds).
   */
  #skipThrough: number | undefined;
  readonly #seqsBehind: SeqsBehind;
  readonly #nothingKept: NothingKeptRun;
  /** Error frames, logged the first of each kind, then once per interval: a relay may send them as fast as any frame. */
  readonly #errorFrameLog: DropLog<ErrorKind>;
  /**
   * Set on a connection made after a failed one until the relay answers a ping or delivers a
   * message: the failure it follows. A relay that accepts the WebSocket and then says nothing is
   * connected until its ping times out; it is not ingested, and /ready must not say it is.
   */
  #unproven: string | undefined;
  /**
   * Whether the open connection's socket has been read at all. One held paused from its open to
   * its close was never given the chance to show the relay's answers: it is no failure.
   */
  #readSinceOpen = false;

  constructor(options: FirehoseClientOptions) {
    // `??`, not a spread of defaults: an option passed as undefined must not erase its default
    // (an undefined ping interval would ping every millisecond; an undefined size limit, none).
    this.#options = {
      ...options,
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      backoffBaseMs: options.backoffBaseMs ?? 1_000,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
      seqsBehindMs: options.seqsBehindMs ?? 10_000,
      nothingKeptMs: options.nothingKeptMs ?? 10_000,
      healthyAfterMs: options.healthyAfterMs ?? 10_000,
      messageTimeoutMs: options.messageTimeoutMs ?? 60_000,
    };
    this.#seqsBehind = new SeqsBehind(options.logger, this.#options.seqsBehindMs);
    this.#nothingKept = new NothingKeptRun(options.logger, this.#options.nothingKeptMs);
    this.#errorFrameLog = new DropLog((fields, kind) => {
      if (kind === 'FutureCursor') {
        options.logger.error(
          fields,
          'UPSTREAM SAYS OUR CURSOR IS IN ITS FUTURE: it was reset or replaced; resuming from its live tip. Events between our cursor and its tip, if any, are not recoverable from it.',
        );
      } else {
        options.logger.warn(fields, 'upstream sent an error frame');
      }
    });
  }

  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /** While not connected, why (the last dial's error, close or refusal), for /ready. */
  get problem(): string | undefined {
    return this.connected ? undefined : this.#problem;
  }

  /**
   * Why the relay is not being ingested although it is connected, for /ready: it has not answered
   * since a failure, every frame keeps nothing (NothingKeptRun: undecoded, a commit with every op dropped, an #info or error frame), or every frame is one already
   * read (SeqsBehind). A quiet relay that answers pings is ingested: it has nothing to send.
   */
  get notIngesting(): string | undefined {
    if (!this.connected) return undefined;
    // While paused the relay's answer, if any, waits unread: its silence then is ours.
    if (this.#unproven !== undefined && !this.#paused) return `upstream reconnected after ${this.#failures} failed connection(s) and has not answered a ping or sent a frame since (last: ${this.#unproven})`;
    return this.#nothingKept.reason ?? this.#seqsBehind.reason;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.close(1000, 'contrail shutting down');
    const forced = setTimeout(() => socket.terminate(), 2_000);
    await closed;
    clearTimeout(forced);
  }

  /** Stops reading from the socket (TCP backpressure) until resume(). */
  pause(): void {
    this.#paused = true;
    this.#socket?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#readSinceOpen = true;
    // A pong that arrived while paused is still unread: do not let the next tick call it missing.
    this.#heardSincePing = true;
    this.#socket?.resume();
  }

  #connect(): void {
    const { logger, metrics } = this.#options;
    const consumerCursor = this.#options.resumeCursor();
    if (consumerCursor !== undefined && this.#skipThrough !== undefined && consumerCursor >= this.#skipThrough) this.#skipThrough = undefined;
    const cursor = this.#skipThrough ?? consumerCursor;
    const url = new URL(this.#options.url);
    if (cursor !== undefined) url.searchParams.set('cursor', String(cursor));
    const shownUrl = redactUrl(this.#options.url);
    logger.info({ url: shownUrl, cursor }, 'connecting to upstream');
    this.#seqsBehind.connecting(cursor);
    this.#nothingKept.connecting();
    let closeReason = 'closed';
    // Closed once ws has read what came before the frame in the same read: messages to hand on, or the 101 itself.
    const reading = new MessagePrefix(SOCKET_MAX_PAYLOAD, () =>
      setImmediate(() => {
        if (socket.readyState !== WebSocket.OPEN) return;
        closeReason = 'oversized_frame';
        socket.terminate();
      }),
    );
    const socket = new WebSocket(url, {
      maxPayload: 0, // no limit: `reading` closes the socket past SOCKET_MAX_PAYLOAD, once the frame's seq is in
      perMessageDeflate: false,
      createConnection: ((options: ConnectionOptions) => reading.connect(options, url.protocol === 'wss:')) as never,
    });
    this.#socket = socket;
    let openedAt = 0;
    let delivered = false;
    let answered = false;
    const heard = () => {
      answered = true;
      this.#unproven = undefined;
    };
    /** A refused handshake (a non-101 answer) was told, and the wait its Retry-After asks for, bounded. */
    let refused = false;
    let retryAfterMs: number | undefined;
    // Pings only start once open: without this a relay that accepts TCP and never answers the
    // upgrade would hold this dial forever. Timing out goes through the normal backoff.
    const { handshakeTimeoutMs } = this.#options;
    const handshakeTimer = setTimeout(() => {
      closeReason = 'handshake_timeout';
      this.#problem = `no WebSocket handshake within ${handshakeTimeoutMs} ms`;
      logger.warn({ url: shownUrl, handshakeTimeoutMs }, 'upstream did not complete the WebSocket handshake in time');
      socket.terminate();
    }, handshakeTimeoutMs);

    socket.on('open', () => {
      clearTimeout(handshakeTimer);
      if (this.#failures > 0) this.#unproven = this.#problem ?? 'the last connection failed';
      this.#problem = undefined;
      openedAt = Date.now();
      this.#readSinceOpen = !this.#paused;
      metrics.connects.inc();
      metrics.connected.set(1);
      logger.info({ url: shownUrl, cursor }, 'upstream connected');
      if (this.#paused) socket.pause();
      this.#startPings(socket, reading, (cause) => (closeReason = cause));
      // A ping now, not at the first interval: a live relay answers at once, which proves this connection.
      socket.ping();
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.#heardSincePing = true;
      metrics.bytes.inc(data.byteLength);
      if (!isBinary) {
        this.#options.drops.report('not_binary', 'upstream sent a text frame');
        this.#nothingKept.keptNothing('not_binary');
        return;
      }
      const message = this.#decode(data);
      if (!message) return;
      const lastDrop = message.type === 'commit' && message.ops.length === 0 ? message.drops.at(-1) : undefined;
      if (lastDrop) this.#nothingKept.keptNothing(lastDrop.reason);
      else if (message.type === 'info') this.#nothingKept.keptNothing(`#info ${cutRelayString(message.name)}`);
      else if (message.type === 'error') this.#nothingKept.keptNothing(`error ${cutRelayString(message.error)}`);
      else this.#nothingKept.kept();
      if (message.type === 'error') {
        closeReason = 'error_frame';
        this.#problem = `upstream sent error ${cutRelayString(message.error)}${message.message ? `: ${cutRelayString(message.message)}` : ''}`;
        this.#onErrorFrame(message);
      } else if (message.type === 'info') {
        heard(); // an answer, but no progress: see below
      } else {
        // An error frame is a refusal, an #info a notice, and a seq already read a frame the consumer
        // drops: none is progress. An upstream that answers every connect with one (then closes), or
        // replays the same window, must meet a growing backoff, not a redial every second.
        if (this.#seqsBehind.read(message.seq)) delivered = true;
        heard();
        // One that goes on delivering after it kept the connection: a later close is not the error's.
        if (closeReason === 'error_frame') closeReason = 'closed';
      }
      this.#options.onMessage(message);
    });
    socket.on('pong', () => {
      this.#heardSincePing = true;
      heard();
    });
    socket.on('unexpected-response', (_request: ClientRequest, response: IncomingMessage) => {
      refused = true;
      closeReason = 'error';
      retryAfterMs = this.#onRefusal(response);
      socket.terminate();
    });
    socket.on('error', (err: Error & { code?: string }) => {
      if (closeReason === 'handshake_timeout' || refused) return; // our own terminate(), already told
      if (closeReason === 'oversized_frame') return; // our own terminate(), told at close
      if (err.code === TOO_LARGE_FOR_THE_SOCKET) {
        closeReason = 'oversized_frame';
        return; // told at close, once the frame's first bytes (and its seq) have arrived
      }
      closeReason = 'error';
      this.#problem = err.message;
      logger.warn({ err: err.message }, 'upstream socket error');
    });
    socket.on('close', (code, reason) => {
      clearTimeout(handshakeTimer);
      clearInterval(this.#pingTimer);
      if (closeReason === 'oversized_frame') this.#skipOversized(reading.oversized);
      if (closeReason === 'closed') this.#problem = `closed by upstream (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`;
      if (closeReason === 'ping_timeout') this.#problem = 'upstream stopped answering pings';
      if (openedAt > 0) metrics.connected.set(0);
      metrics.disconnects.inc({ reason: this.#stopped ? 'stopped' : closeReason });
      // Living long is not enough: a relay that never answers a ping lives a whole ping timeout, and
      // one that never completes a message answers every ping for a whole message timeout.
      const healthy = delivered || (answered && closeReason !== 'message_timeout' && Date.now() - openedAt >= this.#options.healthyAfterMs);
      // A connection held paused from open to close (ingest's queue full) says nothing against the relay.
      const neverRead = openedAt > 0 && !this.#readSinceOpen;
      if (healthy) this.#failures = 0;
      else if (!neverRead) this.#failures++;
      if (this.#stopped) {
        logger.info({ code }, 'upstream closed');
        return;
      }
      const delayMs = Math.max(this.#backoffDelay(), retryAfterMs ?? 0);
      logger.warn(
        { code, reason: reason.toString(), cause: closeReason, retryInMs: delayMs, failures: this.#failures },
        'upstream disconnected; reconnecting',
      );
      this.#reconnectTimer = setTimeout(() => this.#connect(), delayMs);
    });
  }

  /**
   * A handshake answered with something other than 101: says what (and, for a redirect, where to:
   * contrail does not follow one, as a dial elsewhere is the operator's to choose) in the log and
   * /ready. Returns the wait a 429's or 503's Retry-After asks for, at most MAX_RETRY_AFTER_MS.
   */
  #onRefusal(response: IncomingMessage): number | undefined {
    const status = response.statusCode ?? 0;
    const header = response.headers['retry-after'];
    const asked = status === 429 || status === 503 ? retryAfter(header) : undefined;
    const waitMs = asked === undefined ? undefined : Math.min(asked, MAX_RETRY_AFTER_MS);
    // Resolved against the URL dialled and redacted as it is: a relative one may carry its query (an API key) along.
    const location = status >= 300 && status < 400 && response.headers.location ? cutRelayString(redactUrl(resolvedUrl(response.headers.location, this.#options.url))) : undefined;
    let said = `upstream refused the WebSocket handshake: HTTP ${status}${response.statusMessage ? ` ${cutRelayString(response.statusMessage)}` : ''}`;
    if (asked !== undefined) said += `; it asked to retry after ${Math.round(asked / 1000)} s${asked > MAX_RETRY_AFTER_MS ? `, contrail waits at most ${MAX_RETRY_AFTER_MS / 1000} s` : ''}`;
    if (location !== undefined) said += `; it redirects to ${location}, which contrail does not follow: set --upstream to it`;
    this.#problem = said;
    this.#options.logger.warn(
      { status, retryAfter: header === undefined ? undefined : cutRelayString(header), waitMs, location },
      'upstream refused the WebSocket handshake',
    );
    return waitMs;
  }

  #decode(data: Buffer): UpstreamMessage | undefined {
    const { metrics } = this.#options;
    try {
      const message = parseMessage(decodeFrame(data, this.#options.maxFrameBytes));
      metrics.frames.inc({ type: message.type });
      if (message.type === 'commit') {
        for (const drop of message.drops) {
          this.#options.drops.report(drop.reason, drop.detail, { seq: message.seq, repo: message.repo, path: drop.path });
        }
      }
      return message;
    } catch (err) {
      if (!(err instanceof DropError)) throw err;
      // Named by its seq when its first bytes carry one: its events are lost, and that says which.
      this.#options.drops.report(err.reason, err.message, { seq: seqFromPrefix(data.subarray(0, PREFIX_BYTES)), bytes: data.byteLength });
      this.#nothingKept.keptNothing(err.reason);
      return undefined;
    }
  }

  /** A frame above SOCKET_MAX_PAYLOAD closed the socket: count it, and resume after its seq. */
  #skipOversized(frame: { prefix: Buffer; announcedBytes: number } | undefined): void {
    const seq = frame && seqFromPrefix(frame.prefix);
    const bytes = frame?.announcedBytes;
    const detail = `frame of ${bytes ?? 'more than ' + SOCKET_MAX_PAYLOAD} bytes, above the ${SOCKET_MAX_PAYLOAD}-byte socket limit`;
    this.#options.drops.report('oversized', detail, { seq, bytes });
    if (seq === undefined) {
      this.#problem = `upstream sent a ${detail} whose seq could not be read; retrying`;
      this.#options.logger.error({ bytes }, 'an upstream frame too large to read closed the socket, and its seq could not be read from its first bytes; retrying');
      return;
    }
    this.#skipThrough = seq;
    this.#problem = `skipped the oversized frame seq ${seq}; reconnecting after it`;
    this.#options.logger.error(
      { seq, limit: SOCKET_MAX_PAYLOAD, bytes },
      `SKIPPED UPSTREAM FRAME seq ${seq}: larger than ${SOCKET_MAX_PAYLOAD} bytes, it could only be refused by closing the socket; reconnecting with cursor ${seq} (after it). Its events are lost.`,
    );
  }

  #onErrorFrame(message: Extract<UpstreamMessage, { type: 'error' }>): void {
    // The relay names the error: a label (or log reason) of its choosing would grow without bound.
    const kind = KNOWN_ERRORS.has(message.error) ? (message.error as ErrorKind) : 'other';
    this.#options.metrics.errorFrames.inc({ error: kind });
    if (kind === 'FutureCursor') {
      // The consumer starts live now; a skipped seq from before the reset must not hold the next dial
      // at a cursor the upstream has never reached (it would answer FutureCursor again, forever).
      this.#skipThrough = undefined;
      this.#seqsBehind.restarted();
    }
    this.#errorFrameLog.record(kind, message.message ?? '', { error: message.error });
  }

  #startPings(socket: WebSocket, reading: MessagePrefix, onTimeout: (cause: 'ping_timeout' | 'message_timeout') => void): void {
    const { logger, pingIntervalMs, messageTimeoutMs } = this.#options;
    this.#heardSincePing = true;
    /** The message in progress at the last tick, and the reading time it has been in progress for since. */
    let unfinished: { number: number; readingMs: number } | undefined;
    // Judged after the event loop's next read of the sockets (setImmediate runs after it): when
    // contrail's own loop stalled past the deadline, the relay's answer waits unread on the socket,
    // and the stall is ours, not the relay's.
    this.#pingTimer = setInterval(() => setImmediate(judge), pingIntervalMs);
    const judge = () => {
      if (socket.readyState !== WebSocket.OPEN) return;
      // A paused socket reads nothing, pongs included: silence then is ours, not the upstream's, and
      // so is a message that does not move (its reading time starts again after the pause).
      if (this.#paused) {
        unfinished = undefined;
        return;
      }
      if (!this.#heardSincePing) {
        logger.warn('upstream did not answer a ping; reconnecting');
        onTimeout('ping_timeout');
        socket.terminate();
        return;
      }
      const inProgress = reading.messageInProgress;
      if (inProgress === undefined || inProgress.number !== unfinished?.number) {
        unfinished = inProgress && { number: inProgress.number, readingMs: 0 };
      } else if ((unfinished.readingMs += pingIntervalMs) >= messageTimeoutMs) {
        this.#problem = `upstream did not complete a message within ${messageTimeoutMs} ms (its frames announced ${inProgress.announcedBytes} bytes)`;
        logger.warn({ messageTimeoutMs, bytes: inProgress.announcedBytes }, 'upstream did not complete a message in time (a relay that sends one without end keeps the connection looking alive); reconnecting');
        onTimeout('message_timeout');
        socket.terminate();
        return;
      }
      this.#heardSincePing = false;
      socket.ping();
    };
  }

  #backoffDelay(): number {
    const { backoffBaseMs, backoffMaxMs } = this.#options;
    return backoffDelay(this.#failures, { baseMs: backoffBaseMs, maxMs: backoffMaxMs, random: Math.random });
  }
}

/** `location` resolved against `base`, or as given when it is no URL (redactUrl then hides it). */
function resolvedUrl(location: string, base: string): string {
  try {
    return new URL(location, base).toString();
  } catch {
    return location;
  }
}
