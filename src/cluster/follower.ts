import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeliverPolicy, type ConsumerMessages, type StreamState } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { DamagedBlockError, type Batch, type EventStore } from '../store/index.ts';
import { DropLog } from '../upstream/index.ts';
import { isStreamNotFound, type ClusterConnection } from './nats.ts';
import { nowUs, type HopLog } from './hop-timing.ts';
import { decodeStreamRecord, type StreamRecord } from './stream-record.ts';

const POSITION_FILE = 'cluster-position.json';
const MADE_AGAIN = 'THE CLUSTER STREAM WAS MADE AGAIN (its storage lost, or removed)';
const READ_FROM_START = "reading the new one from its start, keeping only events newer than the buffer (one it holds under the same seq must be the same event, or the node stops: another cluster's buffer)";
/** The gap's log line begins so (#reportGap). */
const STREAM_MOVED_PAST = "THE CLUSTER STREAM'S FIRST SEQ MOVED PAST THIS NODE'S POSITION";
const POSITION_SAVE_INTERVAL_MS = 1_000;
const STUCK_CHECK_MS = 3_000;
/** How often the server tells an idle consumer it is alive: two missed start the NATS client's own recovery (see #follow). */
const IDLE_HEARTBEAT_MS = 1_000;

interface SavedPosition {
  stream: string;
  /** When the stream was made (StreamInfo.created): a stream made again under the same name numbers its messages from 1 again. */
  created?: string;
  seq: number;
}

/** The node's buffer holds events this cluster's stream does not: it cannot serve them beside the stream's. */
export class ForeignBufferError extends Error {}

/**
 * A wait for a seq of the stream before it was made again (waitApplied): the new stream numbers
 * its messages from 1 again, so that seq names another message, and the wait cannot be answered.
 */
export class StreamMadeAgainError extends Error {
  constructor(streamName: string, seq: number) {
    super(`the cluster stream ${streamName} was made again while this node waited for its buffer to hold seq ${seq} of the stream before: that seq names another message now`);
  }
}

/** The data dir was deleted under the running node: its position (and its buffer) can no longer be kept where the next start finds them. */
export class DataDirGoneError extends Error {}

/**
 * A stream record this node cannot decode: it may hold events (a newer leader's layout), which the
 * node would then lack under seqs the other nodes serve, so it does not read past it.
 */
export class UnreadableRecordError extends Error {
  constructor(streamName: string, subject: string, seq: number, reason: string) {
    super(
      `the record at seq ${seq} of the cluster stream ${streamName} cannot be read (${reason}), and it may hold events this node would then lack, so the node stops. ` +
        `Written by a newer contrail? Upgrade this node (nodes cannot read the layout a newer leader writes: upgrade the leader last). ` +
        `Published on ${subject} by something else? Remove it (nats stream rmm ${streamName} ${seq}) and start the node again`,
    );
  }
}

function foreignBuffer(dataDir: string, streamName: string, why: string): ForeignBufferError {
  return new ForeignBufferError(
    `${dataDir} holds events that were not read from this cluster's stream "${streamName}" (${why}): ` +
      'their time_us and seqs are not this cluster\'s, so a node cannot serve them beside its events. Start the node on an empty --data-dir',
  );
}

/**
 * Every node's copy of the stream: reads the event stream in order from just after what this
 * node applied, and commits each batch into the local buffer exactly as the leader built it
 * (same time_us and seq, same order), so the local server — and every cursor — sees the same events on
 * every node. The leader's own batches reach its buffer when the stream acknowledges them
 * (ownAppend): during its term its consumer is closed (pause/resume). A batch split over several
 * messages is committed once, when its last part arrives.
 *
 * Where to resume is saved beside the buffer about once a second, after the commit it names; a
 * crash can only make the node start a little early, and a batch already in the buffer is
 * recognised by its seq (or, for a batch without events, its upstream cursor) and skipped — once
 * the buffer's event at that seq has the batch's time_us, or retention removed it. One that has another is not this
 * stream's (another cluster's data dir under the same stream name, or a node ahead of the leader
 * of a stream made again): the follower stops for good (`failed`), and the node with it. So
 * does one whose data dir is gone (deleted under it: saving the position meets ENOENT), rather
 * than serving from a buffer that LMDB now writes into an unlinked file; a save failing
 * otherwise (a full disk) is logged and tried again, as a crash would only start it earlier.
 * The position names a seq of one stream's life (its creation time is saved with it): a stream
 * made again, found at start or while following, is read from its start (#readAgainFromStart).
 *
 * A record it cannot decode stops it for good too (UnreadableRecordError), naming its seq. It
 * may be a batch in a newer leader's layout: passed over, its events would be missing here under
 * seqs the other nodes serve, and the node would build on a buffer that is not the leader's if
 * it led. Tried again, it cannot change (that retry went on for good, the buffer standing still).
 * So the node stops, and its operator upgrades it or removes the record (bytes another
 * application published on the subject) before it is started again.
 *
 * A position saved for a buffer that no longer holds an event nor an upstream cursor (one a
 * machine crash tore is set aside, see store/run-marker.ts, and a new one begins) is not resumed
 * from: the stream is read from its start, so the node serves what the stream still holds, as every
 * other node does. A buffer that applied only batches without events holds their cursor.
 */
export class StreamFollower {
  #applied = 0;
  /** The stream's creation time, saved with the position (see SavedPosition). */
  #created: string | undefined;
  /** Counts the stream's lives this node followed (#readAgainFromStart): a consumer of an earlier one is not read. */
  #life = 0;
  /** The stream seq of the newest message read, applied or not (a part of a split batch waits for the rest). */
  #read = 0;
  /** The parts of a split batch read so far: applied together when its last part comes. */
  #parts: Batch[] = [];
  #messages: ConsumerMessages | undefined;
  #waiters: Array<{ seq: number; resolve: () => void; reject: (err: Error) => void }> = [];
  /** Why it stopped for good: see `failed`. */
  #failure: Error | undefined;
  #onFailure: (err: Error) => void = () => {};
  /** Resolves if the follower stops for good: the buffer holds events the stream does not (#checkHeld), a record cannot be decoded, or the data dir is gone. */
  readonly failed = new Promise<Error>((resolve) => (this.#onFailure = resolve));
  #saveTimer: NodeJS.Timeout | undefined;
  /** While saves fail for a reason other than a missing data dir: logged once, when they start failing. */
  #saveFailing = false;
  #pending = Infinity;
  #running: Promise<void> | undefined;
  #lastLeader: string | undefined;
  /** The stream's last seq when this node began reading it: a leader marker up to it was appended before the node was there. */
  #streamEndAtStart = 0;
  #stopped = false;
  /** While this node leads, its own appends reach the buffer on acknowledgement: no consumer reads them back. */
  #paused = false;
  #resumed: (() => void) | undefined;
  /** A read that keeps failing (commits on a full disk) is tried again every second: one line per interval, saying how many it stands for. */
  readonly #readFailures = new DropLog<'read_failed' | 'stream_gone'>((fields, reason) =>
    reason === 'stream_gone'
      ? // Said at info: the first node whose append or lease check meets the loss makes the stream again and says so (nats.ts).
        this.logger.info(fields, `the cluster stream ${this.cluster.streamName} is gone: this node reads it from its start once a node makes it again`)
      : this.logger.warn(fields, 'reading the cluster event stream failed; starting again from the applied position, every second until it passes'),
  );

  constructor(
    private readonly cluster: ClusterConnection,
    private readonly store: EventStore,
    private readonly dataDir: string,
    private readonly logger: Logger,
    private readonly onApplied: (seq: number) => void = () => {},
    /** Times each batch's hops (bench/cluster --hops). */
    private readonly hops?: HopLog,
  ) {}

  /** The stream seq of the newest batch in the local buffer. */
  get appliedSeq(): number {
    return this.#applied;
  }

  /** True once the node has read everything the stream held when it last reported. */
  get caughtUp(): boolean {
    return this.#pending === 0;
  }

  async start(): Promise<void> {
    const { jsm, streamName } = this.cluster;
    const { state, created } = await jsm.streams.info(streamName);
    this.#created = created;
    const file = readPosition(this.dataDir);
    const position = file === 'unreadable' ? { stream: streamName, seq: 0 } : file;
    if ((position === undefined || position.stream !== streamName) && this.store.lastSeq > 0) {
      throw foreignBuffer(this.dataDir, streamName, position === undefined ? `no ${POSITION_FILE}: a single process's buffer` : `a buffer of the stream "${position.stream}"`);
    }
    let saved: { seq: number; created?: string } = position ?? { seq: 0 };
    if (saved.seq > 0 && ((saved.created !== undefined && saved.created !== created) || saved.seq > state.last_seq)) {
      this.logger.error({ savedSeq: saved.seq, savedStreamCreated: saved.created, streamCreated: created, streamLastSeq: state.last_seq }, `${MADE_AGAIN}: the position this node saved names the stream before; ${READ_FROM_START}`);
      saved = { seq: 0 };
    }
    if (saved.seq > 0 && this.store.lastSeq === 0 && this.store.upstreamCursor === undefined) {
      // The buffer the position was saved for is gone: set aside after a machine crash tore it. (One
      // that applied only batches without events holds their upstream cursor: it is whole.)
      this.logger.warn(
        { savedSeq: saved.seq, streamFirstSeq: state.first_seq },
        'this buffer holds no event and no upstream cursor but its saved cluster position names a stream seq (a buffer set aside after a machine crash?): reading the stream from its start',
      );
      saved = { seq: 0 };
    }
    this.#applied = saved.seq;
    this.#streamEndAtStart = state.last_seq;
    if (saved.seq === 0 && this.store.lastTimeUs > 0) {
      this.logger.warn(
        { streamFirstSeq: state.first_seq, positionFile: file === 'unreadable' ? 'unreadable' : 'names no batch' },
        'this buffer holds events but its saved cluster position names none: reading the whole stream and keeping only events newer than the buffer',
      );
    }
    if (state.last_seq <= saved.seq) this.#pending = 0;
    // Saved before anything is applied, so that from now on the buffer says it is this stream's.
    this.#savePosition();
    this.#saveTimer = setInterval(() => this.#savePositionOrFail(), POSITION_SAVE_INTERVAL_MS);
    this.#saveTimer.unref();
    this.#running = this.#follow();
  }

  /**
   * Reads the stream from just after what is applied, for as long as the node runs. The ordered
   * consumer recovers from most faults by itself; when it gives up (its server died with it, the
   * cluster was electing), a new one starts from the same place.
   */
  async #follow(): Promise<void> {
    const { js, streamName } = this.cluster;
    while (!this.#stopped) {
      try {
        const state = await this.#streamState();
        // Batches older than the stream's first are gone (retention): #apply reports the gap.
        const from = Math.max(this.#applied + 1, state.first_seq);
        this.#parts = [];
        this.#read = from - 1;
        const consumer = await js.consumers.get(streamName, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
        // 5 s requests: a consumer lost with its server is noticed in seconds, not the default 30.
        // The client makes an ordered consumer again by itself (a gap in its deliveries, missed
        // heartbeats, the consumer lost), but its first pull then asks only for what it believes
        // is outstanding, and delivery stalls until two heartbeats are missed: with the default
        // (half the request's 5 s) that took 7-16 s, long enough for #closeWhenStuck to take a
        // recovering consumer for a stopped one; a heartbeat a second ends the stall in 2-3 s.
        const messages = await consumer.consume({ max_messages: 256, expires: 5_000, idle_heartbeat: IDLE_HEARTBEAT_MS });
        this.#messages = messages;
        // Not awaited: a close completes only when the iteration in #apply reaches it, so awaiting it here hung a node stopped during set-up.
        if (this.#stopped || this.#paused) void messages.close();
        void this.#closeWhenStuck(messages);
        await this.#apply(messages);
      } catch (err) {
        if (err instanceof ForeignBufferError || err instanceof UnreadableRecordError) {
          this.fail(err);
          break;
        }
        if (this.#stopped) break;
        this.#readFailures.record(isStreamNotFound(err) ? 'stream_gone' : 'read_failed', (err as Error).message, { appliedSeq: this.#applied });
      }
      if (this.#paused) await new Promise<void>((resolve) => (this.#resumed = resolve));
      else if (!this.#stopped) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }

  /**
   * The stream's state, noticing a stream made again since this node read it (removed and made
   * again by a node, or its storage lost: its creation time changed): #readAgainFromStart.
   */
  async #streamState(): Promise<StreamState> {
    const { state, created } = await this.cluster.jsm.streams.info(this.cluster.streamName);
    if (created !== this.#created && !this.#stopped) this.#readAgainFromStart(created, state);
    return state;
  }

  /**
   * A stream made again numbers its messages from 1 again: the applied position names the one
   * before, and a consumer reading on from it would miss every batch the new one holds below
   * that seq. So the position starts again at 0 (saved at once) and the consumer is closed;
   * #follow starts one at the new stream's start, and its batches the buffer holds are passed over.
   * Waits for seqs of the stream before fail (StreamMadeAgainError): its callers ask again of the new one.
   */
  #readAgainFromStart(created: string, state: StreamState): void {
    this.logger.error({ appliedSeq: this.#applied, streamWasCreated: this.#created, streamCreated: created, streamLastSeq: state.last_seq }, `${MADE_AGAIN} while this node followed it: ${READ_FROM_START}`);
    this.#created = created;
    this.#life++;
    this.#applied = 0;
    this.#read = 0;
    this.#parts = [];
    // Its markers were appended while this node ran: one read at its end is news.
    this.#streamEndAtStart = 0;
    this.#pending = state.last_seq > 0 ? Infinity : 0;
    this.onApplied(0);
    // Every wait named a seq of the stream before: the new one's seq of that number is another message.
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(new StreamMadeAgainError(this.cluster.streamName, waiter.seq));
    const messages = this.#messages;
    this.#messages = undefined;
    void messages?.close();
    this.#savePositionOrFail();
  }

  /** Notices a stream made again since this node read it (#streamState), true if so: a new term's marker must be waited for in the stream it is appended to. */
  async checkStream(): Promise<boolean> {
    const created = this.#created;
    await this.#streamState();
    return this.#created !== created;
  }

  /**
   * A consumer whose server died can sit silent while the client waits for it. Every few seconds
   * the stream's end is compared with what was read: behind and not moving twice in a row, the
   * consumer is closed and #follow starts a fresh one from the applied position. What was read
   * moves whenever the apply loop takes a message, and it takes every message delivered before a
   * check runs (commits are synchronous), so a node busy writing moves it at every check; only
   * delivery stopping for two checks (6-9 s) trips it, longer than the client's own recovery.
   */
  async #closeWhenStuck(messages: ConsumerMessages): Promise<void> {
    let lastRead = this.#read;
    let stuckChecks = 0;
    while (!this.#stopped && this.#messages === messages) {
      await new Promise((resolve) => setTimeout(resolve, STUCK_CHECK_MS).unref());
      if (this.#messages !== messages || this.#stopped) return;
      const end = await this.#streamState().then((state) => state.last_seq, () => undefined);
      // A stream made again closed this consumer (#readAgainFromStart).
      if (this.#messages !== messages || this.#stopped) return;
      stuckChecks = end !== undefined && end > this.#read && this.#read === lastRead ? stuckChecks + 1 : 0;
      lastRead = this.#read;
      if (stuckChecks >= 2) {
        this.logger.warn({ appliedSeq: this.#applied, streamLastSeq: end }, 'the cluster stream consumer stopped delivering; starting a new one');
        await messages.close();
        return;
      }
    }
  }

  /**
   * The stream acknowledged a batch this node appended as leader, at `firstSeq`…`lastSeq` (its
   * parts). Every append names the seq it follows, so when the buffer holds the stream through
   * `firstSeq` − 1 these messages are exactly this batch: it is committed now, as built (the
   * leader's consumer is closed during its term), or only passed over if the buffer holds it
   * already (a batch without events whose upstream cursor did not move). A batch the buffer is
   * not right behind — an earlier one is not in it yet (its commit failed, or acknowledgements
   * came out of order) — is read from the stream, in order, by the consumer, restarted if the
   * term had closed it; one the buffer is past (a consumer applied it before the term) is done.
   */
  ownAppend(firstSeq: number, lastSeq: number, batch: Batch): void {
    if (this.#applied !== firstSeq - 1) {
      if (this.#applied < firstSeq - 1) this.resume();
      return;
    }
    if (!this.#isInBuffer(batch)) {
      // The store commits synchronously: the batch is in the buffer (or failed) when this returns.
      this.store.commitAssigned(batch).catch((err: Error) => this.logger.warn({ err: err.message, firstSeq, lastSeq }, 'committing an appended batch failed; it is applied when the stream delivers it'));
      this.hops?.mark(batch, 'committedUs');
    }
    if (this.#isInBuffer(batch)) this.#advance(lastSeq);
    // Without a consumer during the term (pause), a batch the buffer did not take is read from the stream.
    else this.resume();
  }

  /**
   * Resolves once the local buffer holds the stream through `seq`. A wait given up (`signal`
   * aborts: a term's catch-up that ended) rejects, naming the signal's reason, and is forgotten, so
   * waits that never end do not pile up while the buffer stands still. A stream made again
   * meanwhile rejects it (StreamMadeAgainError): `seq` was the stream's before.
   */
  waitApplied(seq: number, signal?: AbortSignal): Promise<void> {
    if (seq <= this.#applied) return Promise.resolve();
    if (this.#failure) return Promise.reject(this.#failure);
    const givenUp = () => new Error(`gave up waiting for the buffer to hold seq ${seq} (${String(signal?.reason)})`);
    if (signal?.aborted) return Promise.reject(givenUp());
    return new Promise((resolve, reject) => {
      const waiter = { seq, resolve, reject };
      this.#waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          this.#waiters = this.#waiters.filter((other) => other !== waiter);
          reject(givenUp());
        },
        { once: true },
      );
    });
  }

  /** The leader's term began: its appends are committed on acknowledgement (ownAppend), so its consumer closes until resume(). */
  pause(): void {
    this.#paused = true;
    const messages = this.#messages;
    this.#messages = undefined;
    void messages?.close();
  }

  /** Reads the stream again from just after what is applied (the term ended, or an own commit failed). */
  resume(): void {
    this.#paused = false;
    this.#resumed?.();
    this.#resumed = undefined;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.resume();
    clearInterval(this.#saveTimer);
    await this.#messages?.close();
    await this.#running;
    // A follower that failed saves nothing: its data dir may be gone, and its position names a buffer it will not serve.
    if (!this.#failure) this.#savePositionOrFail();
  }

  async #apply(messages: ConsumerMessages): Promise<void> {
    const { hops } = this;
    const life = this.#life;
    for await (const message of messages) {
      // A consumer of the stream before it was made again (#readAgainFromStart): what it delivers is not read.
      if (this.#life !== life) break;
      this.#read = message.seq;
      this.#pending = message.info.pending;
      if (message.seq <= this.#applied) {
        // This node's own batch, committed when the stream acknowledged it (ownAppend); parts
        // read before that belong to it.
        this.#parts = [];
        continue;
      }
      const arrivedUs = hops && nowUs();
      const record = this.#decode(message.data, message.seq);
      if (record.type === 'batch' && record.more) {
        // The applied position stays before the batch's first part until all of it is in.
        this.#parts.push(record.batch);
        continue;
      }
      if (record.type === 'batch') {
        const batch = this.#withEarlierParts(record.batch);
        if (this.#isInBuffer(batch)) this.#checkHeld(batch);
        else {
          if (this.#eventsMissedBefore(batch) > 0) {
            // Batches expired before this node read them — or a stream made again under a consumer
            // that went on at the seqs of the one before (the NATS client makes an ordered consumer
            // again by itself): then it is read again from its start.
            await this.#streamState();
            if (this.#life !== life) break;
            this.#reportGap(batch, message.seq);
          }
          if (hops) hops.arrived(batch, message.info.timestampNanos, arrivedUs!);
          await this.store.commitAssigned(batch);
          hops?.mark(batch, 'committedUs');
          if (this.#life !== life) break;
        }
      } else {
        this.#dropCutOffParts(record.node, message.seq);
        if (record.node !== this.#lastLeader) {
          this.#lastLeader = record.node;
          this.#sayLeaderChange(record.node, message.seq, message.info.pending, message.info.timestampNanos);
        }
      }
      this.#advance(message.seq);
    }
  }

  /** A record that cannot be decoded stops the follower (UnreadableRecordError): retrying cannot change its bytes. */
  #decode(data: Uint8Array, seq: number): StreamRecord {
    try {
      return decodeStreamRecord(data);
    } catch (err) {
      throw new UnreadableRecordError(this.cluster.streamName, this.cluster.subject, seq, (err as Error).message);
    }
  }

  /**
   * A marker the stream already holds more after (its consumer has messages pending behind it), or
   * one the stream held when this node began reading it (the last message then: nothing appended
   * since), is a change of leader made before this node read it — one made while it was away,
   * read as it catches up, minutes or hours old: said at debug with its time, so the log does not
   * show a failover that is not happening. A change appended since, read at the stream's end, is news.
   */
  #sayLeaderChange(leader: string, seq: number, pendingAfter: number, timestampNanos: number): void {
    if (pendingAfter === 0 && seq > this.#streamEndAtStart) return this.logger.info({ leader, seq }, 'a new ingest leader took over');
    const at = new Date(Math.floor(timestampNanos / 1e6)).toISOString();
    this.logger.debug({ leader, seq, at }, 'read a past change of ingest leader while catching up with the stream');
  }

  #advance(seq: number): void {
    if (seq <= this.#applied) return;
    this.#applied = seq;
    this.onApplied(seq);
    this.#wake();
  }

  /** A batch's last part with the parts before it, as the one batch the leader committed. */
  #withEarlierParts(last: Batch): Batch {
    if (this.#parts.length === 0) return last;
    const parts = [...this.#parts, last];
    this.#parts = [];
    return {
      entries: parts.flatMap((part) => part.entries),
      revs: new Map(parts.flatMap((part) => [...part.revs])),
      cursor: last.cursor,
    };
  }

  /**
   * Parts followed by a leader marker instead of their last part: their leader was deposed
   * mid-batch. None of it is applied; the new leader resumes the relay from the cursor before
   * it, so its events come again, whole, in the new term.
   */
  #dropCutOffParts(newLeader: string, markerSeq: number): void {
    if (this.#parts.length === 0) return;
    const events = this.#parts.reduce((sum, part) => sum + part.entries.length, 0);
    this.logger.info({ parts: this.#parts.length, events, newLeader, markerSeq }, 'dropped a batch cut off by a change of leader; the new leader reads its events again from the relay');
    this.#parts = [];
  }

  #isInBuffer(batch: Batch): boolean {
    const last = batch.entries.at(-1);
    if (last) return last.seq! <= this.store.lastSeq;
    const stored = this.store.upstreamCursor;
    return batch.cursor === undefined || (stored?.url === batch.cursor.url && batch.cursor.seq <= stored.seq);
  }

  /**
   * A batch passed over as in the buffer must be there: the buffer's event at its last seq has its
   * time_us. Another event there was never read from this stream — the data dir is another
   * cluster's whose stream has this one's name (taken for this stream made again), or this node
   * was ahead of the leader of a stream made again — and every seq and time_us it would serve
   * from here names another event on the other nodes. No event there, with the batch's time_us at
   * or below what retention removed, is this node's own event trimmed (a re-read after a crash by a
   * node away longer than its --retention): nothing is left to contradict or to serve under it.
   *
   * A damaged block of the buffer holding that seq (DamagedBlockError: its bytes changed on disk)
   * cannot show the event, but still names its events' time_us range: a batch inside it is passed
   * over as a single node passes over the block (the store logs it once; replays that reach it end
   * with BufferDamaged), and one outside it is not this buffer's. Reading it again cannot help.
   * So is a batch whose events a start found lost in a damaged tail run (no event under the seq,
   * the batch's time_us among the lost ones: the newest events, those a restart reads again).
   */
  #checkHeld(batch: Batch): void {
    const last = batch.entries.at(-1);
    if (!last) return;
    let held: ReturnType<EventStore['atSeq']>;
    try {
      held = this.store.atSeq(last.seq!);
    } catch (err) {
      if (!(err instanceof DamagedBlockError)) throw err;
      if (last.timeUs >= err.first && last.timeUs <= err.end) return;
      throw foreignBuffer(this.dataDir, this.cluster.streamName, `the stream's seq ${last.seq} is time_us ${last.timeUs}, and the buffer holds it in a damaged block of time_us ${err.first} to ${err.end}`);
    }
    const heldTimeUs = held !== undefined && held.seq === last.seq ? held.timeUs : undefined;
    if (heldTimeUs === last.timeUs) return;
    if (heldTimeUs === undefined && (last.timeUs <= this.store.trimmedUpTo || this.store.inLostEvents(last.timeUs))) return;
    const here = heldTimeUs === undefined ? 'no event' : `time_us ${heldTimeUs}`;
    throw foreignBuffer(this.dataDir, this.cluster.streamName, `the stream's seq ${last.seq} is time_us ${last.timeUs}, the buffer has ${here} under it`);
  }

  /** Stops following for good, saying why: the node cannot go on with this buffer, past this record, or without its data dir (node.ts watches it). */
  fail(err: Error): void {
    if (this.#failure) return;
    this.logger.error({ appliedSeq: this.#applied }, err.message);
    this.#stopped = true;
    this.#failure = err;
    clearInterval(this.#saveTimer);
    void this.#messages?.close();
    this.#messages = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(err);
    this.#onFailure(err);
  }

  /** Event seqs are consecutive across the stream: how many lie between the buffer's last and the batch's first. */
  #eventsMissedBefore(batch: Batch): number {
    const first = batch.entries[0]?.seq;
    const last = this.store.lastSeq;
    return first === undefined || last === 0 ? 0 : first - last - 1;
  }

  /**
   * A jump in event seqs (in the stream this node reads) means batches left the stream before this
   * node read them: the stream's first seq moved past its position. Its retention dropped them (the
   * node was away or behind longer than --nats-retention) or the stream was purged; which of the
   * two, the node cannot tell, so the line names both.
   */
  #reportGap(batch: Batch, streamSeq: number): void {
    const last = this.store.lastSeq;
    this.logger.error(
      { lastSeqInBuffer: last, nextSeqInStream: last + 1 + this.#eventsMissedBefore(batch), missedEvents: this.#eventsMissedBefore(batch), appliedStreamSeq: this.#applied, batchStreamSeq: streamSeq },
      `${STREAM_MOVED_PAST}: batches this node had not read left the stream (its retention dropped them, the node away or behind longer than --nats-retention, or the stream was purged), so its buffer has a gap; it continues from the oldest batch the stream still has`,
    );
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const ready = this.#waiters.filter((waiter) => waiter.seq <= this.#applied);
    this.#waiters = this.#waiters.filter((waiter) => waiter.seq > this.#applied);
    for (const waiter of ready) waiter.resolve();
  }

  /** Writes the position atomically; a data dir that is gone throws DataDirGoneError, naming it and the file. */
  #savePosition(): void {
    const path = join(this.dataDir, POSITION_FILE);
    const position: SavedPosition = { stream: this.cluster.streamName, created: this.#created, seq: this.#applied };
    try {
      writeFileSync(`${path}.tmp`, JSON.stringify(position));
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      throw new DataDirGoneError(
        `the data dir ${this.dataDir} is gone (deleted while the node ran?): saving ${path} failed (${(err as Error).message}), ` +
          'and the buffer can no longer be kept where the next start finds it, so the node stops. Start it again on a data dir that stays',
      );
    }
  }

  /** Saves the position while running: a data dir that is gone stops the follower (`failed`); any other failure is retried. */
  #savePositionOrFail(): void {
    try {
      this.#savePosition();
      if (this.#saveFailing) this.logger.info({ appliedSeq: this.#applied }, `saved ${POSITION_FILE} again`);
      this.#saveFailing = false;
    } catch (err) {
      if (err instanceof DataDirGoneError) return this.fail(err);
      if (!this.#saveFailing) {
        this.logger.warn(
          { err: (err as Error).message, file: join(this.dataDir, POSITION_FILE), appliedSeq: this.#applied },
          `saving ${POSITION_FILE} failed; the node goes on and tries again every second (a restart meanwhile re-reads from the last saved position)`,
        );
      }
      this.#saveFailing = true;
    }
  }
}

/** The saved position; undefined if there is none; 'unreadable' if it is not JSON (saves are atomic: edited by hand). */
function readPosition(dataDir: string): SavedPosition | 'unreadable' | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, POSITION_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const position = JSON.parse(text) as SavedPosition;
    return { stream: String(position.stream), created: position.created, seq: Number.isSafeInteger(position.seq) ? position.seq : 0 };
  } catch {
    return 'unreadable';
  }
}
