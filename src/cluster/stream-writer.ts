import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Entry } from '../events/index.ts';
import type { Batch } from '../store/index.ts';
import type { HopLog } from './hop-timing.ts';
import { encodeBatchRecords, encodeStreamRecord, fitsOneRecord } from './stream-record.ts';

/** Room left in each message for the headers NATS counts against max_payload (expected-last-sequence and the like). */
const HEADER_ROOM_BYTES = 1_024;
/** NATS's own default, for the moment between servers when the connection has no server info. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** The server refused an append: the stream's last message is not the one it named (another node appended). */
function isRefusedAppend(err: unknown): boolean {
  return /wrong last (sequence|msg id)/i.test((err as Error).message ?? '');
}

/** The stream moved under a leader: another node appended, so this one is no longer the leader. */
export class DeposedError extends Error {
  constructor(expected: number) {
    super(`the event stream moved past seq ${expected}: another node is leading`);
  }
}

/**
 * An append of a split batch failed after some of its parts were in the stream. The batch must
 * not be appended again behind those parts (followers would read its first events twice): the
 * term ends, and the next term's leader marker closes the cut-off batch.
 */
export class CutOffBatchError extends Error {
  constructor(appended: number, parts: number, cause: unknown) {
    super(`appending a batch failed after ${appended} of its ${parts} parts (${(cause as Error).message})`);
  }
}

/**
 * The leader's append side of the event stream. Every publish names the stream sequence it
 * expects to follow (JetStream's expected-last-sequence) and the message id of its predecessor,
 * this term's previous message (expected-last-msg-id), so appends form one chain: once a new
 * leader has published its marker, any append from an older leader — paused, partitioned, or
 * with a publish still in flight — is refused by the server, never stored. The id matters when
 * several messages are in flight: if the first is refused because a marker took its place, the
 * second names the marker's seq as its predecessor's and only its id check refuses it. A batch
 * bigger than the server's max_payload goes out as several parts (stream-record.ts), chained so.
 */
export class StreamWriter {
  /** The seq and id the stream's last message has once everything this term published is in (the marker's at first). */
  #tailSeq = 0;
  #tailMsgId = '';
  /** Unique to the term: ids are never reused, so the server's duplicate detection never drops one of ours. */
  #termId = '';
  #published = 0;
  /** The last fence's marker while nothing was appended after it, with the stream's creation time: see fence. */
  #unusedMarker: { seq: number; streamCreated: string } | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly streamName: string,
    private readonly subject: string,
    private readonly nodeId: string,
    /** Told of each batch the stream acknowledged, with the seqs of its first and last part (the follower applies it without decoding). */
    private readonly onAppended: (firstSeq: number, lastSeq: number, batch: Batch) => void,
    /** Times each batch's hops (bench/cluster --hops). */
    private readonly hops?: HopLog,
  ) {}

  /** The largest stream record the connected server accepts, headers aside. */
  get maxRecordBytes(): number {
    return (this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - HEADER_ROOM_BYTES;
  }

  /**
   * Starts a term: appends this node's leader marker right after the stream's current end,
   * retrying while other appends land first. Returns the marker's seq: everything before it is
   * what the new term builds on (upstream cursor, last time_us, revs).
   *
   * A marker this writer appended before, still the stream's last message (same stream, nothing
   * published after it: its term gave up waiting for the buffer), fences the stream as a new one
   * would and is kept: a lone node whose buffer stands still takes the lease back every ~1.3
   * leases, and appended a marker each time.
   */
  async fence(): Promise<number> {
    const unused = this.#unusedMarker;
    if (unused) {
      const { state, created } = await this.jsm.streams.info(this.streamName);
      // Still in the stream, too: a purge or the retention leaves the last seq where it was, and a buffer cannot reach a marker that is gone.
      if (state.last_seq === unused.seq && state.first_seq <= unused.seq && created === unused.streamCreated) return unused.seq;
      this.#unusedMarker = undefined;
    }
    const marker = encodeStreamRecord({ type: 'leader', node: this.nodeId });
    this.#termId = `${this.nodeId}.${randomUUID()}`;
    for (;;) {
      const { state, created } = await this.jsm.streams.info(this.streamName);
      const msgID = this.#nextMsgId();
      try {
        const ack = await this.js.publish(this.subject, marker, { msgID, expect: { lastSequence: state.last_seq } });
        this.#tailSeq = ack.seq;
        this.#tailMsgId = msgID;
        this.#unusedMarker = { seq: ack.seq, streamCreated: created };
        return ack.seq;
      } catch (err) {
        if (!isRefusedAppend(err)) throw err;
      }
    }
  }

  #nextMsgId(): string {
    return `${this.#termId}.${++this.#published}`;
  }

  /**
   * Takes out of the batch the events that could not fit a NATS message even alone (a record
   * near the relay's size limit against a small max_payload) and returns them: dropped before
   * they are numbered, so seqs stay consecutive; the caller reports them.
   */
  takeOversizedEvents(batch: Batch): Entry[] {
    const maxBytes = this.maxRecordBytes;
    const oversized = batch.entries.filter((entry) => !fitsOneRecord(this.nodeId, entry, maxBytes));
    if (oversized.length > 0) batch.entries = batch.entries.filter((entry) => !oversized.includes(entry));
    return oversized;
  }

  /**
   * Appends a batch directly after what this term published before it, in as many messages as
   * it needs, and returns the seq of its last; `onAppended` hears of it once the stream
   * acknowledged all of it. DeposedError if anything else came between (or an earlier append
   * failed); CutOffBatchError if only some of its parts got in.
   *
   * The messages go out at once, without waiting for the acks of earlier ones — the parts of a
   * split batch, and a batch published while the one before is in flight — each naming the seq
   * and id its predecessor will have: they stay in order on this connection, and once one is
   * refused every later one is too (its expected predecessor never arrived), so what got in is
   * always a prefix of what was published — as when they went one by one.
   */
  async append(batch: Batch): Promise<number> {
    this.#unusedMarker = undefined;
    const parts = encodeBatchRecords(this.nodeId, batch, this.maxRecordBytes);
    this.hops?.mark(batch, 'encodedUs');
    const after = this.#tailSeq;
    let predecessor = this.#tailMsgId;
    const ids = parts.map(() => this.#nextMsgId());
    this.#tailSeq = after + parts.length;
    this.#tailMsgId = ids.at(-1)!;
    const acks = parts.map((bytes, i) => {
      const expect = { lastSequence: after + i, lastMsgID: predecessor };
      predecessor = ids[i]!;
      return this.js.publish(this.subject, bytes, { msgID: ids[i]!, expect });
    });
    const results = await Promise.allSettled(acks);
    for (const [i, result] of results.entries()) {
      if (result.status === 'rejected') {
        const err: unknown = result.reason;
        if (isRefusedAppend(err) && i === 0) throw new DeposedError(after);
        if (i > 0) throw new CutOffBatchError(i, parts.length, err);
        throw err;
      }
    }
    this.hops?.mark(batch, 'ackedUs');
    this.onAppended(after + 1, after + parts.length, batch);
    return after + parts.length;
  }
}
