import type { Logger } from 'pino';
import { StreamMadeAgainError, type StreamFollower } from './follower.ts';
import type { ClusterConnection } from './nats.ts';

const RETRY_MS = 1_000;

/** One call to applied(): resolved once the buffer holds the stream's end, while `wanted` says it is still waited for. */
interface Caller {
  resolve: () => void;
  wanted: () => boolean;
}

/**
 * "Once this node holds everything the stream holds now": what a client's cursor ahead of this
 * node's buffer waits for (the server's settle), so that a cursor another node gave out is told
 * apart from a future one. One stream-info request answers every caller that arrived before it
 * was sent — a node that a failed node's clients all reconnect to at once asks NATS once or
 * twice, not once per client — and callers that arrive while it travels wait for the next one,
 * because the answer must postdate their cursor. While NATS cannot answer, it asks again every
 * second for as long as a caller still wants the answer (a client that left does not) and the
 * node runs (stop); the retry's timer never keeps the process alive. An end whose stream was made
 * again before the buffer reached it is asked again, of the new stream.
 */
export class StreamEnd {
  #queued: Caller[] = [];
  #asking = false;
  #stopped = false;
  /** Ends the wait between two requests early (stop). */
  #wakeRetry: (() => void) | undefined;

  constructor(
    private readonly cluster: Pick<ClusterConnection, 'jsm' | 'streamName'>,
    private readonly follower: Pick<StreamFollower, 'waitApplied'>,
    private readonly logger: Logger,
  ) {}

  /**
   * Resolves once the local buffer holds the stream through the last message it had when this was
   * called. Never, if the caller stops being `wanted` before the stream's end is known, or the
   * node stops first.
   */
  applied(wanted: () => boolean = () => true): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped) return;
      this.#queued.push({ resolve, wanted });
      if (!this.#asking) void this.#ask();
    });
  }

  /** The node stops: no more requests, and callers still waiting are let go. */
  stop(): void {
    this.#stopped = true;
    this.#queued = [];
    this.#wakeRetry?.();
  }

  async #ask(): Promise<void> {
    this.#asking = true;
    for (;;) {
      const callers = this.#queued.filter((caller) => caller.wanted());
      this.#queued = [];
      if (this.#stopped || callers.length === 0) break;
      const lastSeq = await this.#lastSeq(callers);
      // Undefined: stopped, or every caller left while NATS could not answer.
      if (lastSeq === undefined) continue;
      this.follower.waitApplied(lastSeq).then(
        () => callers.forEach((caller) => caller.resolve()),
        (err: unknown) => {
          // The end of a stream made again since: the callers wait for the new one's. A follower
          // that stopped for good (follower.ts, failed) never applies anything: the node is stopping.
          if (err instanceof StreamMadeAgainError) this.#askAgain(callers);
        },
      );
    }
    this.#asking = false;
  }

  #askAgain(callers: Caller[]): void {
    if (this.#stopped) return;
    this.#queued.push(...callers);
    if (!this.#asking) void this.#ask();
  }

  async #lastSeq(callers: readonly Caller[]): Promise<number | undefined> {
    for (;;) {
      try {
        return (await this.cluster.jsm.streams.info(this.cluster.streamName)).state.last_seq;
      } catch (err) {
        if (this.#stopped || !callers.some((caller) => caller.wanted())) return undefined;
        this.logger.warn({ err: (err as Error).message }, 'cannot read the cluster stream’s end for a cursor ahead of this buffer; asking again');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RETRY_MS);
          timer.unref();
          this.#wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wakeRetry = undefined;
        if (this.#stopped || !callers.some((caller) => caller.wanted())) return undefined;
      }
    }
  }
}
