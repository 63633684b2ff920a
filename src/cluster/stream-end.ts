import type { Logger } from 'pino';
import type { StreamFollower } from './follower.ts';
import type { ClusterConnection } from './nats.ts';

const RETRY_MS = 1_000;

/**
 * "Once this node holds everything the stream holds now": what a client's cursor ahead of this
 * node's buffer waits for (the server's settle), so that a cursor another node gave out is told
 * apart from a future one. One stream-info request answers every caller that arrived before it
 * was sent — a node that a failed node's clients all reconnect to at once asks NATS once or
 * twice, not once per client — and callers that arrive while it travels wait for the next one,
 * because the answer must postdate their cursor. While NATS cannot answer, it asks again every
 * second (the node is not applying anything then either).
 */
export class StreamEnd {
  #queued: Array<() => void> = [];
  #asking = false;

  constructor(
    private readonly cluster: Pick<ClusterConnection, 'jsm' | 'streamName'>,
    private readonly follower: Pick<StreamFollower, 'waitApplied'>,
    private readonly logger: Logger,
  ) {}

  /** Resolves once the local buffer holds the stream through the last message it had when this was called. */
  applied(): Promise<void> {
    return new Promise((resolve) => {
      this.#queued.push(resolve);
      if (!this.#asking) void this.#ask();
    });
  }

  async #ask(): Promise<void> {
    this.#asking = true;
    while (this.#queued.length > 0) {
      const callers = this.#queued;
      this.#queued = [];
      const lastSeq = await this.#lastSeq();
      // A follower that stopped for good (follower.ts, failed) never applies it: the node is stopping.
      this.follower.waitApplied(lastSeq).then(() => callers.forEach((resolve) => resolve()), () => {});
    }
    this.#asking = false;
  }

  async #lastSeq(): Promise<number> {
    for (;;) {
      try {
        return (await this.cluster.jsm.streams.info(this.cluster.streamName)).state.last_seq;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'cannot read the cluster stream’s end for a cursor ahead of this buffer; asking again');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }
}
