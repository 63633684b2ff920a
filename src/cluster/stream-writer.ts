import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Batch } from '../store/index.ts';
import { isWrongRevision } from './lease.ts';
import { encodeStreamRecord } from './stream-record.ts';

/** The stream moved under a leader: another node appended, so this one is no longer the leader. */
export class DeposedError extends Error {
  constructor(expected: number) {
    super(`the event stream moved past seq ${expected}: another node is leading`);
  }
}

/**
 * The leader's append side of the event stream. Every publish names the stream sequence it
 * expects to follow (JetStream's expected-last-sequence), so appends form one chain: once a new
 * leader has published its marker, any append from an older leader — paused, partitioned, or
 * with a publish still in flight — is refused by the server, never stored.
 */
export class StreamWriter {
  #lastSeq = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly streamName: string,
    private readonly subject: string,
    private readonly nodeId: string,
  ) {}

  /**
   * Starts a term: appends this node's leader marker right after the stream's current end,
   * retrying while other appends land first. Returns the marker's seq: everything before it is
   * what the new term builds on (upstream cursor, last time_us, revs).
   */
  async fence(): Promise<number> {
    const marker = encodeStreamRecord({ type: 'leader', node: this.nodeId });
    for (;;) {
      const { state } = await this.jsm.streams.info(this.streamName);
      try {
        const ack = await this.js.publish(this.subject, marker, { expect: { lastSequence: state.last_seq } });
        this.#lastSeq = ack.seq;
        return ack.seq;
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
      }
    }
  }

  /** Appends a batch directly after our previous append; DeposedError if anything else came between. */
  async append(batch: Batch): Promise<number> {
    try {
      const ack = await this.js.publish(this.subject, encodeStreamRecord({ type: 'batch', node: this.nodeId, batch }), { expect: { lastSequence: this.#lastSeq } });
      this.#lastSeq = ack.seq;
      return ack.seq;
    } catch (err) {
      if (isWrongRevision(err)) throw new DeposedError(this.#lastSeq);
      throw err;
    }
  }
}
