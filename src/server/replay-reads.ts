import type { Entry } from '../events/index.ts';
import { DamagedBlockError, ReasonsSaid, UnreadableBufferError, type EventStore, type OldestHeld, type ReadOptions } from '../store/index.ts';
import { withheld } from './backfill-feed.ts';
import { sendsEvent, type SubscriberFilter } from './filter.ts';
import { decodeAnswer, filterSpecJson, ReplayReadFailed, type ReplayPool, type ReplayReply } from './replay-pool.ts';
import type { Subscriber } from './subscriber.ts';

/** One read's bounds: a few ms of work, and no more than a sink's high-water mark of bytes. */
const READ_LIMITS = { maxEntries: 512, maxScanned: 10_000, maxBytes: 256 * 1024 };

/**
 * A replay read's result: the events after the subscriber's position its filter sends (wanted
 * and within maxMessageSizeBytes), and the position examined up to. `frames` are the events'
 * zstd frames when a worker made them.
 */
export interface ReplayBatch {
  entries: Entry[];
  frames?: Uint8Array[];
  position: number;
  /** Read for a subscriber following the oldest event: the oldest event held when it was read, where its stream starts. */
  fromOldest?: OldestHeld;
}

/** A worker's answer for the events after `from`, accepted (neither stale nor failed) and not used yet. */
interface Answered {
  from: number;
  /** The events, decoded in the subscriber's turn (so decoding shares the replays' slice, not a live commit's turn); or retention removed events after `from`. */
  reply: Extract<ReplayReply, { records: ArrayBuffer }> | 'trimmed';
}

interface ReadState {
  /** Bumped when the subscriber leaves or replays from elsewhere: a read asked for before is stale. */
  generation: number;
  /** The filter the batch was read, or the read asked, with: after an options_update, stale too. */
  filter?: SubscriberFilter;
  /** A worker is reading for it (at most one read at a time). */
  reading: boolean;
  /** Read, not sent whole yet (the sink filled up, or the step's share was sent): sent first on the next step. */
  batch?: ReplayBatch;
  /**
   * Workers' answers waiting to be used, oldest first: with `batch` and a read in flight, at most
   * two at once (see #readAhead), so a subscriber holds one batch being sent and one read ahead.
   */
  answers: Answered[];
  /** Retention removed events after the position (a worker's answer said so, and it was next). */
  trimmed?: boolean;
  /** The last worker read failed (there, or the worker died): read the next batch here. */
  onMainThread?: boolean;
  /** A read here's options, made once per filter (`select` is the filter): a read made them anew, closures and all. */
  readOptions?: ReadOptions;
  /**
   * The array of the batch last sent whole or dropped, emptied: the next read here fills it
   * (ReadOptions.into) instead of a new one, as nothing else holds it.
   */
  spare?: Entry[];
}

/**
 * Where a replaying subscriber's next batch comes from: from the hot log, synchronously, as
 * before — so the last step before the subscriber joins the live index runs between commits
 * and the handover has no seam — and from LMDB on a replay worker thread (replay-pool.ts), or
 * on this thread when there are none (--replay-workers 0) or the worker died. A subscriber has
 * at most one worker read in flight; its answer waits here until the hub's turn comes
 * (replay-turns.ts), so handling answers shares the replays' bounded slice of each turn and
 * never delays a commit's publish. A worker reads ahead: once an answer is accepted, or becomes
 * the batch being sent, and nothing else is held or asked for, the batch after it is asked for
 * at once if it too is beyond the hot log (#readAhead), so the worker reads while this thread
 * sends instead of the two taking turns; a subscriber holds at most one batch being sent and one
 * read ahead (in flight or answered). An answer is used only for the position it was read after,
 * with the filter and generation it was asked with. A read asked for before the subscriber's
 * filter changed or it left is dropped when it comes back, but an index inconsistency it found
 * is still reported.
 */
export class ReplayReads {
  readonly #states = new WeakMap<Subscriber, ReadState>();
  readonly #specs = new WeakMap<SubscriberFilter, string>();
  /** Workers' faults said so far: each reason is said once. */
  readonly #faultsSaid = new ReasonsSaid();

  constructor(
    private readonly store: EventStore,
    private readonly pool: ReplayPool | undefined,
    /** A worker's answer came for a subscriber (or its read failed): give it a step. */
    private readonly wake: (subscriber: Subscriber) => void,
    private readonly countTooLarge: (count: number) => void,
    /** A read was asked for ahead, while the batch before it is sent. */
    private readonly countReadAhead: () => void = () => {},
  ) {}

  /**
   * The subscriber's next batch; 'reading' while a worker reads it (wake follows); 'trimmed' if
   * retention removed events it had not read; a DamagedBlockError if its next events are in a
   * block that cannot be read, an UnreadableBufferError if their read failed otherwise (a
   * worker's read that failed is read again here, and fails so).
   */
  next(subscriber: Subscriber): ReplayBatch | 'reading' | 'trimmed' | DamagedBlockError | UnreadableBufferError {
    const state = this.#stateOf(subscriber);
    if (state.filter !== subscriber.filter) {
      this.#dropBatch(subscriber, state);
      state.answers.length = 0;
      state.trimmed = false;
    }
    if (state.trimmed) return 'trimmed';
    if (state.batch) return state.batch;
    const answered = state.answers.shift();
    // Read after another position (the one it was read ahead for was left some other way): dropped,
    // as is any read after it, the one in flight too (stale when it comes back).
    if (answered && answered.from !== subscriber.position) {
      state.answers.length = 0;
      state.generation++;
    } else if (answered?.reply === 'trimmed') {
      return this.#trimmed(state);
    } else if (answered) {
      // Counted as used: an answer dropped unused (its filter changed, it was read ahead for a position left) is read again.
      if (answered.reply.tooLarge > 0) this.countTooLarge(answered.reply.tooLarge);
      state.batch = decodeAnswer(answered.reply);
      if (this.pool) this.#readAhead(subscriber, state, this.pool);
      return state.batch;
    }
    if (state.reading) return 'reading';
    // One that follows the oldest event reads from the oldest held now. A worker starts at its own
    // snapshot's oldest if retention trims again before it reads, and its answer is sent as it is,
    // so a trim at every commit cannot keep moving it on with nothing sent.
    if (subscriber.followsOldest) subscriber.position = Math.max(subscriber.position, this.store.trimmedUpTo);
    if (this.pool && !state.onMainThread && !this.store.hotLog.covers(subscriber.position)) {
      this.#readInWorker(subscriber, state, this.pool, subscriber.position, subscriber.followsOldest);
      return 'reading';
    }
    state.onMainThread = false;
    const { filter } = subscriber;
    state.filter = filter;
    let options = state.readOptions;
    if (options?.select !== filter) state.readOptions = options = this.#readOptions(filter, subscriber.id);
    options.into = state.spare;
    state.spare = undefined;
    try {
      const read: ReplayBatch = this.store.readAfter(subscriber.position, options);
      if (subscriber.followsOldest) read.fromOldest = { oldest: this.store.oldest() };
      return (state.batch = read);
    } catch (err) {
      if (err instanceof DamagedBlockError || err instanceof UnreadableBufferError) return err;
      throw err;
    } finally {
      options.into = undefined;
    }
  }

  #readOptions(filter: SubscriberFilter, reader: number): ReadOptions {
    const tooLarge = () => this.countTooLarge(1);
    return { ...READ_LIMITS, filter: (entry) => sendsEvent(filter, entry, tooLarge), select: filter, reader };
  }

  /**
   * What of the batch is still to send: entries[from..) are those after the subscriber's position;
   * while its backfills hold some back, only the others are left in `entries` (a copy, rare).
   */
  unsent(subscriber: Subscriber, batch: ReplayBatch): { entries: readonly Entry[]; frames: readonly Uint8Array[] | undefined; from: number } {
    const from = firstAfter(batch.entries, subscriber.position);
    // One shape, no spread: made once per step of 64 events, it stays an object the compiler can leave unmade.
    if (!subscriber.backfill) return { entries: batch.entries, frames: batch.frames, from };
    const kept: number[] = [];
    for (let i = from; i < batch.entries.length; i++) if (!withheld(subscriber, batch.entries[i]!)) kept.push(i);
    const entries = kept.map((i) => batch.entries[i]!);
    const frames = batch.frames && kept.map((i) => batch.frames![i]!);
    return { entries, frames, from: 0 };
  }

  /** The batch was sent whole. */
  finished(subscriber: Subscriber): void {
    this.#dropBatch(subscriber, this.#stateOf(subscriber));
  }

  /** Forgets what was read for the subscriber (it left, or replays from another position). */
  reset(subscriber: Subscriber): void {
    const state = this.#states.get(subscriber);
    if (!state) return;
    this.store.readerDone(subscriber.id);
    this.pool?.readerDone(subscriber.id);
    state.generation++;
    this.#dropBatch(subscriber, state);
    state.spare = undefined;
    state.answers.length = 0;
    state.trimmed = false;
  }

  #trimmed(state: ReadState): 'trimmed' {
    state.answers.length = 0;
    state.trimmed = true;
    return 'trimmed';
  }

  /**
   * Forgets the subscriber's batch, and releases its read where the sink kept no reference to what
   * it was given (uWS copies what it cannot write at once; `ws` and Node's HTTP responses queue the
   * buffers themselves, so their reads are left to the garbage collector). Its array, which the
   * sinks never see, is kept for the next read, emptied: a long-lived array is in the old
   * generation, and events it still pointed at would survive every young collection.
   */
  #dropBatch(subscriber: Subscriber, state: ReadState): void {
    const { batch } = state;
    if (!batch) return;
    if (subscriber.sink.copiesOnSend) this.store.release(batch);
    state.batch = undefined;
    (batch.entries as Array<Entry | undefined>).fill(undefined);
    state.spare = batch.entries;
  }

  #stateOf(subscriber: Subscriber): ReadState {
    let state = this.#states.get(subscriber);
    if (!state) this.#states.set(subscriber, (state = { generation: 0, reading: false, answers: [] }));
    return state;
  }

  /**
   * Asks a worker for the batch after the one the subscriber sends next, while it is sent: when
   * that one alone is held (a batch, or an accepted answer) and nothing is asked for, and the hot
   * log does not hold what follows it (so its read would go to a worker anyway: the floor only
   * rises). The bound — one batch being sent, one read ahead — keeps a subscriber's memory at two
   * reads. Never a read that follows the oldest event: one made after something was sent (a trim
   * past it is `trimmed`, not a jump).
   */
  #readAhead(subscriber: Subscriber, state: ReadState, pool: ReplayPool): void {
    if (state.reading || state.onMainThread || state.answers.length + (state.batch ? 1 : 0) !== 1) return;
    const [answered] = state.answers;
    // An answer for a position the subscriber has left is dropped when it is next (next()): nothing is read after it.
    if (answered && answered.from !== subscriber.position) return;
    const last = answered?.reply ?? state.batch!;
    if (last === 'trimmed' || this.store.hotLog.covers(last.position)) return;
    this.countReadAhead();
    this.#readInWorker(subscriber, state, pool, last.position, false);
  }

  #readInWorker(subscriber: Subscriber, state: ReadState, pool: ReplayPool, position: number, fromOldest: boolean): void {
    const { generation } = state;
    const { filter } = subscriber;
    state.filter = filter;
    const { sealedEvents, didIndexUsable } = this.store.indexState;
    const request = {
      position,
      // What the hot log does not hold: everything up to its floor is committed, so the worker's snapshot has it.
      end: this.store.hotLog.floor,
      filter: this.#specOf(filter),
      wire: { name: subscriber.wire.name, zstd: subscriber.wire.zstd },
      limits: READ_LIMITS,
      reader: subscriber.id,
      sealedEvents,
      didIndexUsable,
      fromOldest,
    };
    const readHere = () => {
      state.reading = false;
      state.onMainThread = true;
      this.wake(subscriber);
    };
    state.reading = true;
    pool.read(request).then(
      (answer) => {
        state.reading = false;
        let answered: Answered | undefined;
        // A throw here would be an unhandled rejection, the end of the process: it costs this batch, read again here.
        try {
          // What the read found about the index is the store's, whoever asked: told even when the
          // answer is stale (the worker reports a finding once, then scans until a rebuild it counts).
          if (!answer.trimmed && answer.inconsistency) this.store.reportDidIndexInconsistent(answer.inconsistency, answer.indexRebuilds ?? 0);
          // A page LMDB refused, which the worker read around (whatever it then answered): the store's to say and count, as a failed read.
          if (answer.refused) this.store.workerReadFailed(answer.refused);
          if (state.generation !== generation || subscriber.filter !== filter || subscriber.mode === 'closed') return this.wake(subscriber);
          state.answers.push((answered = { from: position, reply: answer.trimmed ? 'trimmed' : answer }));
          this.wake(subscriber);
          this.#readAhead(subscriber, state, pool);
        } catch (err) {
          // Dropped, if it was held (and whatever came after it, not another read's answer before it): its batch is read here.
          const held = answered ? state.answers.indexOf(answered) : -1;
          if (held >= 0) state.answers.splice(held);
          try {
            pool.logger.error({ err: (err as Error).message, stack: (err as Error).stack }, "a replay worker's answer could not be handled: its batch is read on the main thread");
          } finally {
            // However saying it goes: a throw left the subscriber unwoken, its replay stuck.
            readHere();
          }
        }
      },
      // The worker died (the pool logs it) or the read failed there: this batch is read here,
      // however saying the failure goes (a throw left the read asked for, and the replay stuck).
      (err) => {
        try {
          if (err instanceof ReplayReadFailed) this.#workerReadFailed(err, pool);
        } catch (failure) {
          pool.logger.error({ err: (failure as Error).message, stack: (failure as Error).stack }, "a replay worker's failed read could not be said: its batch is read on the main thread");
        } finally {
          readHere();
        }
      },
    );
  }

  /**
   * A read that failed in its worker. Damage it met is the store's to say and count even when the
   * read here succeeds: it may be where only workers read (the tail, which this thread holds in
   * memory); a damaged block's is said by the read here. A fault is no damage: said once per kind.
   * A page the read found its way around before it failed is damage, whatever failed the read.
   */
  #workerReadFailed(failure: ReplayReadFailed, pool: ReplayPool): void {
    if (failure.refused) this.store.workerReadFailed(failure.refused);
    if (failure.kind === 'unreadable') return this.store.workerReadFailed(failure.message);
    if (failure.kind !== 'fault' || !this.#faultsSaid.first(failure.message)) return;
    pool.logger.error(
      { err: failure.message },
      "a replay worker's read failed, not on what it read of the buffer (a fault of the worker, or its snapshot older than the request; no damage, not counted as such): its batch is read on the main thread",
    );
  }

  /** The filter as a request carries it, made once per filter. */
  #specOf(filter: SubscriberFilter): string {
    let spec = this.#specs.get(filter);
    if (spec === undefined) this.#specs.set(filter, (spec = filterSpecJson(filter)));
    return spec;
  }
}

/** Index of the first entry with time_us > position. */
function firstAfter(entries: readonly Entry[], position: number): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid]!.timeUs <= position) low = mid + 1;
    else high = mid;
  }
  return low;
}
