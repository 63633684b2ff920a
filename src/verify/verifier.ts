import type { Logger } from 'pino';
import { IdentityError, unresolvableDid, type AtprotoIdentity, type IdentityResolver } from '../identity/index.ts';
import { DropLog, type UpstreamMessage } from '../upstream/index.ts';
import { checkCommit, checkSync, passed, type Checked, type CommitMessage, type SyncMessage, type VerifyMode } from './check.ts';
import { CheckPool } from './check-pool.ts';
import { asVerifyError, VerifyError, type VerifyFailure } from './failure.ts';
import { endedRunMetrics, type VerifyMetrics } from './metrics.ts';
import { RepoLog } from './repo-log.ts';
import { SigningKeys } from './signing-keys.ts';

/** The longest wait before a repo's next resync (resyncRetryMaxMs's default); --verify-resync-retry may not exceed it. */
export const RESYNC_RETRY_MAX_MS = 3_600_000;

export interface VerifierOptions {
  mode: VerifyMode;
  identity: IdentityResolver;
  logger: Logger;
  metrics: VerifyMetrics;
  /**
   * Receives every message that passed or needs no check, in upstream order per repo.
   * `released` marks one that was held while its repo's key was resolved: messages of other
   * repos with higher seqs went ahead of it.
   */
  deliver: (message: UpstreamMessage, released: boolean) => void;
  /**
   * Re-establishes a repo that went out of sync from its PDS (its latest signed commit): resolves
   * with the rev and the MST root (`data`, a CID's bytes) of the repo's checked, signed commit,
   * or rejects. Its commits are held meanwhile. Without it, only a valid #sync re-establishes a repo.
   */
  resync?: (did: string) => Promise<ResyncedRepo>;
  /** Resyncs run at once; more wait their turn (their repos' commits held). */
  maxResyncs?: number;
  /**
   * The wait before a repo is resynced again. After a resync failed, the repo's first commit this
   * long later starts another (the time doubles with each failure in a row). After a resync
   * succeeded and the repo failed again soon after, the next resync waits until this long after
   * that one (the time doubles with each resync in a row so followed): a relay cannot make every
   * bad frame cost a fetch from its PDS. Until then its commits are withheld as out_of_sync. Default 30 s
   * (--verify-resync-retry), the identity stage's memory of a failed resolution.
   */
  resyncRetryMs?: number;
  /**
   * The longest of those waits; also how long a resynced repo must go without failing for its
   * next failure to be resynced at once, its run of resyncs forgotten. Default 1 h.
   */
  resyncRetryMaxMs?: number;
  /** The clock those waits are timed on (ms). */
  nowMs?: () => number;
  /** How often each per-repo line (out of sync, resync failed …) is logged at most (see RepoLog); 0: every one. Default 10 s. */
  repoLogEveryMs?: number;
  /**
   * Called with true when too many messages wait for verification, too many new did:plc repos for
   * their DID documents, or too many bytes are held for did:plc repos (pause reading), false once
   * they drain. did:web repos never pause reading: they are bounded apart (see isDidWeb).
   */
  onBackpressure?: (paused: boolean) => void;
  /** Bytes of one repo's messages held while its key is resolved; past it its commits and #syncs fail with held_overflow (its #identity and #account events are still held, within maxHeldBytes). */
  maxHeldBytesPerRepo?: number;
  /**
   * Bytes held for all repos together; past it a message that would be held fails as held_overflow,
   * as does a did:web repo's past a quarter of it held for did:web repos. Reading pauses while more
   * than half of it is held for did:plc repos, and resumes below a quarter, so that bound catches
   * only what was read before the pause took hold.
   */
  maxHeldBytes?: number;
  /** Messages waiting for verification before reading pauses. */
  maxQueued?: number;
  /** Repos whose last verified rev and sync status are remembered (least recently active forgotten first). */
  maxRepos?: number;
  /** Worker threads for the signature and MST checks; without, they run on this thread. */
  checkPool?: CheckPool;
}

/** Where a resync re-established a repo: its signed commit's rev and MST root (a CID's bytes). */
export interface ResyncedRepo {
  rev: string;
  data: Uint8Array;
}

interface Waiting {
  message: UpstreamMessage;
  receivedAt: number;
  /** Held while its repo's DID document was fetched again because its signature failed: if it fails with that document too, it is not fetched again. */
  refreshed?: true;
}

/** A check started ahead of its turn (on a worker) with the key cached then. */
interface Prefetched {
  signingKey: string;
  result: Promise<Checked>;
}

interface Held {
  messages: Waiting[];
  bytes: number;
  /** Why the identity could not be had, once resolution failed. */
  error?: string;
  /** Set once a message did not fit: the held ones go through, then the repo is out of sync. */
  overflowed?: string;
}

interface RepoState {
  /** The rev of the last commit or #sync that passed. */
  rev?: string;
  /**
   * `full`: the MST root of that commit (or of the snapshot a resync re-established it at), which
   * the next commit's prevData must name: its CID's bytes as a latin1 string (rootKey), 56 bytes
   * that keep nothing else alive. A root checked on a worker is a view of its answer's buffer, shared
   * by up to eight roots; kept as such, one repo kept all of it (471 bytes per repo, measured).
   */
  data?: string;
  /** Set after a failure, until a valid #sync or a resync. */
  outOfSync?: VerifyFailure;
  /** Set while a resync is queued or running: the repo's messages are held until it ends. */
  resyncing?: boolean;
  /**
   * After a failed resync, or a failure too soon after a successful one: from when a commit of the
   * repo starts another resync, and the failed resyncs in a row (0 for the latter).
   */
  resyncRetry?: { at: number; failures: number };
  /**
   * The last successful resync: when it ended, and the resyncs in a row it ends (each but the
   * first started by a failure within resyncRetryMaxMs of the one before).
   */
  lastResync?: { at: number; inARow: number };
  /** Messages waiting for the repo's key to be resolved (or refreshed). */
  held?: Held;
}

/** How a resync ended: where it re-established the repo, or why it could not. */
type Resynced = ResyncedRepo | { error: string };

type Task = ({ kind: 'message'; prefetched?: Prefetched } & Waiting) | { kind: 'release'; did: string; resynced?: Resynced };

/** Why reading from the upstream paused (contrail_verify_read_pauses_total{reason}). */
type PauseReason = 'queued' | 'resolving' | 'held_bytes';

const PAUSE_LINES: Record<PauseReason, string> = {
  queued: 'reading from the upstream pauses: too many messages wait for verification',
  resolving: 'reading from the upstream pauses: too many did:plc repos wait for their DID documents',
  held_bytes: 'reading from the upstream pauses: too many bytes are held for did:plc repos whose keys are resolved, or that are resynced',
};

/** What one held message is assumed to cost beyond its CAR (its fields and the objects around them). */
const MESSAGE_OVERHEAD_BYTES = 256;

/** Checks started on the workers ahead of the message being judged, per worker. */
const PREFETCH_PER_WORKER = 32;

/**
 * The verification stage's pipeline: upstream messages in, verified messages out, in order.
 * See index.ts for the design.
 */
export class Verifier {
  readonly #options: Required<Omit<VerifierOptions, 'resync' | 'onBackpressure' | 'checkPool'>> & Pick<VerifierOptions, 'resync' | 'onBackpressure'>;
  readonly #keys = new SigningKeys();
  readonly #pool: CheckPool | undefined;
  /** Tasks before this index have had their check started, if they could. */
  #prefetchedTo = 0;
  readonly #repos = new Map<string, RepoState>();
  readonly #failureLog: DropLog<VerifyFailure>;
  readonly #repoLog: RepoLog;
  #tasks: Task[] = [];
  #nextTask = 0;
  #running: Promise<void> | undefined;
  #highestSeq: number | undefined;
  #heldBytes = 0;
  /** Of those, held for did:web repos: at most a quarter of maxHeldBytes, and never a reason to pause reading. */
  #heldWebBytes = 0;
  #heldRepos = new Set<string>();
  /**
   * Messages of repos being released (their key resolved, or their resync ended) not judged yet:
   * they still count as held, so the saved cursor stays below them until each is delivered.
   */
  readonly #releasing = new Map<string, { messages: Waiting[]; next: number }>();
  #outOfSync = 0;
  /**
   * Repos held for a DID document (their first, or again after a signature failed), of each source,
   * bounded as the resolver bounds each one's fetches waiting: past it, did:plc ones pause reading,
   * a new did:web one is not held, and one whose signature failed is asked for once.
   */
  readonly #resolving = { plc: 0, web: 0 };
  #paused = false;
  /** Repos waiting for a resync slot, in the order they went out of sync. */
  readonly #resyncQueue: string[] = [];
  #resyncsRunning = 0;
  /** Set by ended(): the identity cache may be closed by the time a resolution or resync ends. */
  #ended = false;

  constructor(options: VerifierOptions) {
    this.#options = {
      maxHeldBytesPerRepo: 4 * 1024 * 1024,
      maxHeldBytes: 64 * 1024 * 1024,
      maxQueued: 10_000,
      maxRepos: 500_000,
      maxResyncs: 4,
      resyncRetryMs: 30_000,
      resyncRetryMaxMs: RESYNC_RETRY_MAX_MS,
      repoLogEveryMs: 10_000,
      ...options,
      nowMs: options.nowMs ?? Date.now,
    };
    this.#pool = options.checkPool;
    this.#failureLog = new DropLog((fields) => options.logger.warn(fields, 'upstream message failed verification; not emitted'));
    this.#repoLog = new RepoLog(options.logger, this.#options.repoLogEveryMs, this.#options.nowMs);
  }

  get mode(): VerifyMode {
    return this.#options.mode;
  }

  handle(message: UpstreamMessage): void {
    this.#tasks.push({ kind: 'message', message, receivedAt: Date.now() });
    const queued = this.#tasks.length - this.#nextTask;
    this.#options.metrics.queued.set(queued);
    this.#updatePaused();
    // At once, not when the queue reaches it: the loop may be waiting for a worker's answer.
    if (this.#pool) this.#prefetch();
    this.#run();
  }

  /**
   * Its run is over (the gateway stops, or a cluster node's term ended): what it still holds or
   * resyncs is abandoned (the next run reads it again), so its gauges read 0 from now on, and a
   * resolution or resync that ends later releases nothing.
   */
  ended(): void {
    this.#ended = true;
    this.#options.metrics = endedRunMetrics(this.#options.metrics);
  }

  /** Resolves once every message handed in is delivered, failed or held. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }


  /** The lowest seq held (for a key or a resync, or being released): the saved upstream cursor must stay below it. */
  heldBelow(): number | undefined {
    let lowest = Infinity;
    this.#eachHeld((_did, seq) => (lowest = Math.min(lowest, seq)));
    return lowest === Infinity ? undefined : lowest;
  }

  /** The repos whose messages are held or being released, each with its lowest seq not yet delivered. */
  heldRepos(): [string, number][] {
    const repos: [string, number][] = [];
    this.#eachHeld((did, seq) => repos.push([did, seq]));
    return repos;
  }

  /** Each repo with messages held or being released, with its lowest seq among them. */
  #eachHeld(visit: (did: string, seq: number) => void): void {
    const releasingFrom = (did: string) => {
      const releasing = this.#releasing.get(did);
      return releasing ? lowestSeq(releasing.messages, releasing.next) : Infinity;
    };
    for (const did of this.#heldRepos) {
      const lowest = Math.min(lowestSeq(this.#repos.get(did)!.held!.messages, 0), releasingFrom(did));
      if (lowest !== Infinity) visit(did, lowest);
    }
    for (const did of this.#releasing.keys()) {
      if (this.#heldRepos.has(did)) continue;
      const lowest = releasingFrom(did);
      if (lowest !== Infinity) visit(did, lowest);
    }
  }

  /** Why the repo is out of sync, if it is. */
  outOfSync(did: string): VerifyFailure | undefined {
    return this.#repos.get(did)?.outOfSync;
  }

  #run(): void {
    if (this.#running) return;
    this.#running = this.#drain();
  }

  async #drain(): Promise<void> {
    await undefined; // #running is assigned first
    for (;;) {
      const task = this.#tasks[this.#nextTask];
      if (task === undefined) break;
      if (this.#pool) this.#prefetch();
      this.#nextTask++;
      if (this.#nextTask > 1024 && this.#nextTask * 2 > this.#tasks.length) {
        this.#tasks = this.#tasks.slice(this.#nextTask);
        this.#prefetchedTo -= this.#nextTask;
        this.#nextTask = 0;
      }
      try {
        if (task.kind === 'release') await this.#release(task.did, task.resynced);
        else await this.#process(task.message, task.receivedAt, task.prefetched);
      } catch (err) {
        this.#repoLog.error({ err, ...describeTask(task) }, 'verification failed unexpectedly; the message is dropped');
      }
      const queued = this.#tasks.length - this.#nextTask;
      this.#options.metrics.queued.set(queued);
      this.#updatePaused();
    }
    // Cleared in the same turn the queue was found empty: a task pushed from now on starts a
    // new loop (cleared a turn later, a task pushed in between would wait for the next one).
    this.#running = undefined;
  }

  /**
   * Starts the checks of the next queued messages on the workers, with the keys cached now, so
   * the workers run while this thread judges messages in order. Each result is used only if the
   * key is still the one the message is judged with when its turn comes. Called as each message
   * arrives and as each is judged; refilled once half the checks started are judged, so under a
   * backlog they go out in batches (one worker message each), and at a steady rate one by one.
   */
  #prefetch(): void {
    const window = PREFETCH_PER_WORKER * this.#pool!.size;
    if (this.#prefetchedTo - this.#nextTask > window / 2) return;
    const end = Math.min(this.#tasks.length, this.#nextTask + window);
    for (let i = Math.max(this.#prefetchedTo, this.#nextTask); i < end; i++) {
      const task = this.#tasks[i];
      if (task?.kind !== 'message' || (task.message.type !== 'commit' && task.message.type !== 'sync')) continue;
      const did = task.message.type === 'commit' ? task.message.repo : task.message.did;
      const state = this.#repos.get(did);
      if (state?.held || state?.outOfSync) continue;
      const signingKey = this.#options.identity.cached(did)?.signingKey;
      if (signingKey) task.prefetched = { signingKey, result: this.#check(task.message, signingKey) };
    }
    this.#prefetchedTo = Math.max(this.#prefetchedTo, end);
  }

  /** The signature (and in full, the MST) check, and in full the commit's MST root. Never rejects. */
  async #check(message: CommitMessage | SyncMessage, signingKey: string): Promise<Checked> {
    const { mode } = this.#options;
    const here = async (): Promise<Checked> => {
      try {
        return passed(await (message.type === 'commit' ? checkCommit(message, signingKey, mode, this.#keys) : checkSync(message, signingKey, this.#keys)), mode);
      } catch (err) {
        return { failure: asVerifyError(err) };
      }
    };
    if (!this.#pool) return here();
    try {
      return await this.#pool.check(message, signingKey, mode);
    } catch {
      return here(); // the worker died (it was logged); the check is not lost
    }
  }

  async #process(message: UpstreamMessage, receivedAt: number, prefetched?: Prefetched): Promise<void> {
    if (message.type === 'error' || message.type === 'info') {
      // After FutureCursor the upstream numbers from its own tip: earlier seqs are new again.
      if (message.type === 'error' && message.error === 'FutureCursor') this.#highestSeq = undefined;
      this.#options.deliver(message, false);
      return;
    }
    // A reconnect resumes below messages still held or queued here: those are seen twice.
    if (this.#highestSeq !== undefined && message.seq <= this.#highestSeq) {
      this.#options.metrics.duplicates.inc();
      return;
    }
    this.#highestSeq = message.seq;
    const did = message.type === 'commit' ? message.repo : message.did;
    const state = this.#repos.get(did);
    if (state?.held) {
      this.#hold(did, state, { message, receivedAt });
      return;
    }
    const { identity } = this.#options;
    if (message.type === 'identity') {
      // The document may have changed (a rotated key, a new PDS): fetch it before the next commit
      // needs it (a fetch begun before this event arrived may predate the change: not joined).
      identity.forgetFailure(did);
      if (identity.cached(did)) identity.refresh(did, receivedAt).catch(() => {});
      this.#options.deliver(message, false);
      return;
    }
    if (message.type === 'account') {
      this.#options.deliver(message, false);
      return;
    }
    const unresolvable = unresolvableDid(did);
    if (unresolvable) {
      // Failed with no state kept: the repos remembered are bounded by count, and such a DID can be
      // 2,048 characters of anything, so a flood of made-up ones would otherwise weigh gigabytes.
      this.#options.metrics.failures.inc({ reason: 'unknown_key' });
      this.#failureLog.record('unknown_key', unresolvable, { type: message.type, seq: message.seq });
      return;
    }
    const known = identity.cached(did);
    if (!known) {
      if (isDidWeb(did) && this.#resolving.web >= identity.maxQueued) {
        this.#fail(did, message, 'unknown_key', `${this.#resolving.web} did:web repos already wait for their DID documents`);
        return;
      }
      this.#startHolding(did, { message, receivedAt }, this.#document(did, () => identity.resolvePatiently(did)));
      return;
    }
    await this.#verify(did, message, known, { message, receivedAt }, false, prefetched);
  }

  async #verify(did: string, message: CommitMessage | SyncMessage, known: AtprotoIdentity, waiting: Waiting, released: boolean, prefetched?: Prefetched): Promise<void> {
    const { receivedAt } = waiting;
    const state = this.#state(did);
    if (message.type === 'commit' && state.outOfSync) {
      if (state.resyncRetry && this.#options.nowMs() >= state.resyncRetry.at) {
        // The wait is over (the last resync failed, maybe on a passing PDS or directory failure,
        // or came just before): try again, and judge this commit (and the repo's next ones, held
        // meanwhile) once it ends.
        this.#repoLog.info({ did, failures: state.resyncRetry.failures }, 'resyncing an out-of-sync repo again, its wait over');
        this.#queueResync(did, state);
        this.#hold(did, state, waiting);
        return;
      }
      this.#fail(did, message, 'out_of_sync', `out of sync since a ${state.outOfSync} failure`);
      return;
    }
    let checked: Checked;
    try {
      if (!known.signingKey) throw new VerifyError('unknown_key', `the DID document of ${did} names no #atproto signing key`);
      if (message.type === 'commit' && state.rev !== undefined && message.rev <= state.rev) {
        throw new VerifyError('rev_not_newer', `rev ${message.rev} is not newer than ${state.rev}, already verified`);
      }
      if (message.type === 'sync' && state.rev !== undefined && message.rev < state.rev) {
        throw new VerifyError('rev_not_newer', `#sync rev ${message.rev} is older than ${state.rev}, already verified`);
      }
      checked = await (prefetched?.signingKey === known.signingKey ? prefetched.result : this.#check(message, known.signingKey));
      if (checked.failure) throw checked.failure;
      // The proof holds within the commit (its ops take prevData to data); the chain ties it to the one before.
      if (message.type === 'commit' && state.data !== undefined && rootKey(message.proof.prevData?.bytes) !== state.data) {
        throw new VerifyError('broken_chain', `prevData ${message.proof.prevData?.toString() ?? '(none)'} is not the MST root of the last verified commit (rev ${state.rev})`);
      }
      if (message.type === 'sync') {
        if (state.outOfSync) this.#outOfSync--;
        state.outOfSync = undefined;
        state.resyncRetry = undefined;
        this.#options.metrics.outOfSync.set(this.#outOfSync);
      }
    } catch (err) {
      const error = asVerifyError(err);
      // Once per message (a second would fetch the same document, or fail as the first did), and
      // only with a document from before it arrived — released ones too: a repo's messages held
      // for its first document, or for a resync, may be signed with a key that rotated since. A
      // fetch begun in the millisecond it arrived may have begun before it: the clock cannot tell.
      if (error.reason === 'bad_signature' && !waiting.refreshed && known.fetchedAt <= receivedAt) {
        // The key may have rotated since the cached document was fetched: fetch it again
        // and judge this message (and the repo's next ones, held meanwhile) with the new one.
        this.#options.metrics.keyRefreshes.inc();
        const { identity } = this.#options;
        // Asked again after a passing failure, as a first document is; a did:web repo past its bound is asked once.
        const refreshed = isDidWeb(did) && this.#resolving.web >= identity.maxQueued ? identity.refresh(did, receivedAt) : this.#document(did, () => identity.refreshPatiently(did, receivedAt));
        this.#startHolding(did, { message, receivedAt, refreshed: true }, refreshed);
        return;
      }
      this.#fail(did, message, error.reason, error.message);
      return;
    }
    state.rev = message.rev;
    state.data = rootKey(checked.data);
    this.#options.metrics.verified.inc({ type: message.type });
    this.#options.deliver(message, released);
  }

  #startHolding(did: string, first: Waiting, resolution: Promise<AtprotoIdentity>): void {
    const state = this.#state(did);
    const held: Held = { messages: [], bytes: 0 };
    state.held = held;
    this.#heldRepos.add(did);
    this.#hold(did, state, first);
    resolution.then(
      () => {},
      (err: Error) => (held.error = err.message),
    ).finally(() => {
      if (this.#ended) return;
      this.#tasks.push({ kind: 'release', did });
      this.#run();
    });
    this.#updateHeldMetrics();
  }

  #hold(did: string, state: RepoState, waiting: Waiting): void {
    const held = state.held!;
    const bytes = sizeOf(waiting.message);
    // A commit or #sync past the repo's bound is lost to the resync that follows, whose snapshot
    // holds what it changed. An #identity or #account event is not checked and no resync brings it
    // back: it is held past that bound, in order, within the bound for all repos.
    const event = waiting.message.type === 'identity' || waiting.message.type === 'account';
    const overRepoBound = held.overflowed !== undefined || held.bytes + bytes > this.#options.maxHeldBytesPerRepo;
    const web = isDidWeb(did);
    const overWebBound = web && this.#heldWebBytes + bytes > this.#options.maxHeldBytes / 4;
    if ((overRepoBound && !event) || overWebBound || this.#heldBytes + bytes > this.#options.maxHeldBytes) {
      // Dropped, not failed yet: the messages held before it are still judged on release.
      const reason = held.overflowed ? 'out_of_sync' : 'held_overflow';
      held.overflowed ??= overWebBound
        ? `${this.#heldWebBytes} bytes were already held for did:web repos (a quarter of the bound for all repos) when ${did}'s key was resolved`
        : `${held.bytes} bytes were already held for ${did} while its key was resolved`;
      this.#options.metrics.failures.inc({ reason });
      if (reason === 'held_overflow') this.#failureLog.record(reason, held.overflowed, { did, type: waiting.message.type });
      return;
    }
    held.messages.push(waiting);
    held.bytes += bytes;
    this.#heldBytes += bytes;
    if (web) this.#heldWebBytes += bytes;
    this.#updateHeldMetrics();
  }

  async #release(did: string, resynced?: Resynced): Promise<void> {
    const state = this.#repos.get(did);
    if (!state) return;
    if (resynced) {
      this.#resynced(did, state, resynced);
    } else if (state.resyncing) {
      return; // the key is here, but the repo waits for its resync, which releases it
    }
    const held = state.held;
    if (!held) return;
    state.held = undefined;
    this.#heldRepos.delete(did);
    this.#heldBytes -= held.bytes;
    if (isDidWeb(did)) this.#heldWebBytes -= held.bytes;
    this.#updateHeldMetrics();
    const known = this.#options.identity.cached(did);
    // Each counts as held (heldBelow, heldRepos) until it is judged.
    const releasing = { messages: held.messages, next: 0 };
    this.#releasing.set(did, releasing);
    try {
      for (const waiting of held.messages) {
        const { message } = waiting;
        if (state.held) {
          // A message released just now sent the repo back to waiting (its signature failed with
          // the cached key): the rest wait behind it, in order.
          this.#hold(did, state, waiting);
        } else if (message.type !== 'commit' && message.type !== 'sync') {
          this.#options.deliver(message, true);
        } else if (!known) {
          this.#fail(did, message, 'unknown_key', held.error ?? `${did} could not be resolved`);
        } else {
          await this.#verify(did, message, known, waiting, true);
        }
        releasing.next++;
      }
    } finally {
      this.#releasing.delete(did);
    }
    if (held.overflowed) this.#markOutOfSync(did, 'held_overflow');
  }

  #fail(did: string, message: CommitMessage | SyncMessage, reason: VerifyFailure, detail: string): void {
    this.#options.metrics.failures.inc({ reason });
    if (reason !== 'out_of_sync') this.#failureLog.record(reason, detail, { type: message.type, seq: message.seq, did, rev: message.rev });
    // A replay changes nothing the subscribers have not seen; every other failure withholds a
    // change of the repo, so what follows cannot be trusted to apply until it is re-established.
    if (reason === 'rev_not_newer' || reason === 'out_of_sync') return;
    this.#markOutOfSync(did, reason);
  }

  #markOutOfSync(did: string, reason: VerifyFailure): void {
    const state = this.#state(did);
    if (state.outOfSync) return;
    state.outOfSync = reason;
    this.#outOfSync++;
    this.#options.metrics.outOfSync.set(this.#outOfSync);
    if (!this.#options.resync) {
      this.#repoLog.warn({ did, reason }, 'repo is out of sync: its commits are withheld until a valid #sync');
      return;
    }
    const now = this.#options.nowMs();
    // In sync for the longest wait since its last resync: the run of resyncs is over.
    if (state.lastResync && now - state.lastResync.at >= this.#options.resyncRetryMaxMs) state.lastResync = undefined;
    const last = state.lastResync;
    const resyncAt = last ? last.at + this.#resyncWait(last.inARow) : now;
    if (last && resyncAt > now) {
      // Failed again soon after a resync: the next one waits, as after a failed resync.
      state.resyncRetry = { at: resyncAt, failures: 0 };
      this.#options.metrics.resyncsDeferred.inc();
      this.#repoLog.warn(
        { did, reason, resyncsInARow: last.inARow, resyncInMs: resyncAt - now },
        'repo is out of sync again soon after a resync: its commits are withheld until a valid #sync, or until one arriving after resyncInMs starts another resync',
      );
      return;
    }
    this.#repoLog.warn({ did, reason }, 'repo is out of sync: its commits are held while it is resynced from its PDS');
    this.#queueResync(did, state);
  }

  /** The wait before the next resync after `times` failed resyncs in a row, or resyncs in a row each failed again soon after. */
  #resyncWait(times: number): number {
    return Math.min(this.#options.resyncRetryMs * 2 ** (times - 1), this.#options.resyncRetryMaxMs);
  }

  #queueResync(did: string, state: RepoState): void {
    // Held from now on (joining messages already held for its key): released when the resync ends.
    state.resyncing = true;
    if (!state.held) {
      state.held = { messages: [], bytes: 0 };
      this.#heldRepos.add(did);
      this.#updateHeldMetrics();
    }
    this.#resyncQueue.push(did);
    this.#startResyncs();
  }

  #startResyncs(): void {
    const resync = this.#options.resync!;
    while (this.#resyncsRunning < this.#options.maxResyncs && this.#resyncQueue.length > 0) {
      const did = this.#resyncQueue.shift()!;
      this.#resyncsRunning++;
      void resync(did)
        .then(
          (repo): Resynced => repo,
          (err: Error): Resynced => ({ error: err.message }),
        )
        .then((resynced) => {
          if (this.#ended) return;
          this.#resyncsRunning--;
          this.#tasks.push({ kind: 'release', did, resynced });
          this.#run();
          this.#startResyncs();
        });
    }
  }

  /** Applies a resync's outcome, before the messages held meanwhile are judged. */
  #resynced(did: string, state: RepoState, resynced: Resynced): void {
    state.resyncing = false;
    if ('error' in resynced) {
      const failures = (state.resyncRetry?.failures ?? 0) + 1;
      const retryInMs = this.#resyncWait(failures);
      state.resyncRetry = { at: this.#options.nowMs() + retryInMs, failures };
      this.#options.metrics.resyncs.inc({ result: 'failed' });
      this.#repoLog.warn(
        { did, error: resynced.error, failures, retryInMs },
        'could not resync the repo from its PDS: its commits are withheld until a valid #sync, or until one arriving after retryInMs starts another resync',
      );
      return;
    }
    state.resyncRetry = undefined;
    state.lastResync = { at: this.#options.nowMs(), inARow: (state.lastResync?.inARow ?? 0) + 1 };
    this.#options.metrics.resyncs.inc({ result: 'resynced' });
    this.#repoLog.info({ did, rev: resynced.rev }, 'repo resynced from its PDS');
    if (state.outOfSync) this.#outOfSync--;
    state.outOfSync = undefined;
    // Held commits the snapshot already contains (rev not newer) are dropped as replays; the next
    // commit must chain from the snapshot (a snapshot older than the last verified commit leaves
    // the chain at that commit).
    if (state.rev === undefined || resynced.rev >= state.rev) {
      state.rev = resynced.rev;
      if (this.#options.mode === 'full') state.data = rootKey(resynced.data);
    }
    this.#options.metrics.outOfSync.set(this.#outOfSync);
  }

  /** The repo's state, marked most recently used; the least recently used are forgotten past maxRepos. */
  #state(did: string): RepoState {
    let state = this.#repos.get(did);
    if (state) {
      this.#repos.delete(did);
    } else {
      state = {};
    }
    this.#repos.set(did, state);
    if (this.#repos.size > this.#options.maxRepos) {
      for (const [oldest, old] of this.#repos) {
        if (old.held) continue; // held messages must be released
        this.#repos.delete(oldest);
        if (old.outOfSync) this.#options.metrics.outOfSync.set(--this.#outOfSync);
        break;
      }
    }
    return state;
  }

  #updateHeldMetrics(): void {
    this.#options.metrics.heldBytes.set(this.#heldBytes);
    this.#options.metrics.heldRepos.set(this.#heldRepos.size);
  }

  /**
   * The DID's document, for a repo seen for the first time or whose signature failed with the
   * cached key, asked again after a passing failure of the directory (`lookup`: resolvePatiently or
   * refreshPatiently; one 503 lost the repo's held commits). It waits its turn at the resolver
   * however many wait: refused as `overloaded`, a burst of new repos (a cold cache on the live
   * network) failed as unknown_key and was resynced, a fetch from its PDS each, for the gateway's own backlog.
   * Instead reading pauses while more did:plc repos wait than the resolver would let (#updatePaused).
   */
  async #document(did: string, lookup: () => Promise<AtprotoIdentity>): Promise<AtprotoIdentity> {
    const source = isDidWeb(did) ? 'web' : 'plc';
    this.#resolving[source]++;
    this.#updatePaused();
    try {
      for (;;) {
        try {
          return await lookup();
        } catch (err) {
          // Only a fetch of the DID begun by another caller, which joined, can be refused so: ask again.
          if (!(err instanceof IdentityError && err.reason === 'overloaded')) throw err;
        }
      }
    } finally {
      this.#resolving[source]--;
      this.#updatePaused();
    }
  }

  /**
   * Reading pauses past a bound and resumes below half of it: messages waiting to be judged
   * (maxQueued), repos waiting for their first DID document (the resolver's own queue bound), and
   * bytes held (half of maxHeldBytes: what is read after the pause, and the queue judged meanwhile,
   * must still fit). Released repos free their bytes while reading is paused: a DID document or a
   * resync comes whether the upstream is read or not.
   */
  #updatePaused(): void {
    const queued = this.#tasks.length - this.#nextTask;
    const over = (count: number, bound: number) => (this.#paused ? count >= bound / 2 : count > bound);
    const reason: PauseReason | undefined = over(queued, this.#options.maxQueued)
      ? 'queued'
      : over(this.#resolving.plc, this.#options.identity.maxQueued)
        ? 'resolving'
        : over(this.#heldBytes - this.#heldWebBytes, this.#options.maxHeldBytes / 2)
          ? 'held_bytes'
          : undefined;
    if ((reason !== undefined) === this.#paused) return;
    this.#paused = reason !== undefined;
    if (reason) {
      this.#options.metrics.readPauses.inc({ reason });
      this.#repoLog.warn({ reason, queued, resolving: this.#resolving.plc, heldBytes: this.#heldBytes - this.#heldWebBytes, heldRepos: this.#heldRepos.size }, PAUSE_LINES[reason]);
    }
    this.#options.onBackpressure?.(this.#paused);
  }
}

/**
 * did:web documents come from hosts anyone runs, and anyone can make such accounts, a subdomain
 * each: hosts that hold their answers would keep a pause on for every repo on the network. So their
 * repos never pause reading; they are bounded apart, all together (a bound per host bounds nothing
 * when hosts cost nothing), and past those bounds fail and are resynced. The PLC directory is the
 * operator's and serves nearly every repo: a slow one pauses reading, as a cold cache does.
 */
function isDidWeb(did: string): boolean {
  return did.startsWith('did:web:');
}

function sizeOf(message: UpstreamMessage): number {
  if (message.type === 'commit') return message.proof.car.bytes.byteLength + MESSAGE_OVERHEAD_BYTES;
  if (message.type === 'sync') return message.blocks.byteLength + MESSAGE_OVERHEAD_BYTES;
  return MESSAGE_OVERHEAD_BYTES;
}

/** What a task is about, for a log line. */
function describeTask(task: Task): object {
  if (task.kind === 'release') return { did: task.did, releasing: true };
  const { message } = task;
  if (message.type === 'error' || message.type === 'info') return { type: message.type };
  return { type: message.type, seq: message.seq, did: message.type === 'commit' ? message.repo : message.did };
}

/** The lowest seq among the messages from index `from` (Infinity if none has one). */
function lowestSeq(waiting: Waiting[], from: number): number {
  let lowest = Infinity;
  for (let i = from; i < waiting.length; i++) {
    const { message } = waiting[i]!;
    if ('seq' in message && message.seq < lowest) lowest = message.seq;
  }
  return lowest;
}

/** A CID's bytes as RepoState keeps an MST root: a string of its own, whatever buffer they are a view of. */
function rootKey(bytes: Uint8Array | undefined): string | undefined {
  return bytes && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
