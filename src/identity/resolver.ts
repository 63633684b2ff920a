import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { BadDocumentError, identityFromDocument, type AtprotoIdentity } from './did-document.ts';
import { DirectoryWaits } from './directory-waits.ts';
import { RefusedEndpointError } from './endpoint-guard.ts';
import { FetchSlots } from './fetch-slots.ts';
import { BodyTooLargeError, FetchTimeoutError, getGuarded, readBodyLimited } from './guarded-fetch.ts';
import type { IdentityCache } from './cache.ts';
import type { IdentityMetrics } from './metrics.ts';
import { retryAfter } from './retry-after.ts';

/** Why a DID could not be resolved. Used as a metric label. */
export type IdentityFailure =
  | 'not_found'
  | 'timeout'
  | 'unreachable'
  | 'bad_document'
  | 'refused_endpoint'
  | 'overloaded'
  | 'unsupported_did';

export class IdentityError extends Error {
  constructor(
    readonly reason: IdentityFailure,
    message: string,
    /** The wait a 429's or 503's Retry-After asked for: the failure is remembered no longer (see MIN_FAILURE_MEMORY_MS). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface IdentityResolverOptions {
  /** The did:plc directory, e.g. https://plc.directory (the operator's choice: not endpoint-guarded). */
  plcUrl: string;
  cache: IdentityCache;
  /** Let did:web hosts (and, for callers, PDS endpoints) be loopback, private or link-local. */
  allowPrivateEndpoints: boolean;
  metrics?: IdentityMetrics;
  /** Says when a directory asks to wait (Retry-After). */
  logger?: Logger;
  /** Per fetch, headers and body together. */
  timeoutMs?: number;
  /** Fetches at once from the PLC directory, and as many from did:web hosts; the rest wait for a slot. */
  maxConcurrent?: number;
  /** Fetches waiting for a slot, of each; past it resolve() fails at once with `overloaded` (unless asked to wait). */
  maxQueued?: number;
  maxDocumentBytes?: number;
  /** A cached identity older than this is still used, and refreshed in the background. */
  staleAfterMs?: number;
  /** A DID that failed to resolve is not tried again for this long, or one refused with a Retry-After until its time if sooner (at least 1 s); failures are remembered in memory. */
  failureTtlMs?: number;
  /** resolvePatiently's waits before each time it asks again after a passing failure (default 1, 2 and 4 s). */
  patientRetriesMs?: readonly number[];
}

const MAX_REMEMBERED_FAILURES = 10_000;

/**
 * The shortest a failure that came with a Retry-After is remembered, however short the wait asked
 * for (0 included): a DID whose directory keeps refusing is asked at most once a second.
 */
const MIN_FAILURE_MEMORY_MS = 1_000;

/** The longest a directory's Retry-After is honoured: past it, it is asked again (and may ask again). */
const MAX_DIRECTORY_WAIT_MS = 60_000;

/** Failures that may pass (a directory slow, down for a moment, rate-limiting: 5xx, 429), which resolvePatiently asks again after. */
const PASSING_FAILURES: ReadonlySet<IdentityFailure> = new Set(['timeout', 'unreachable']);

/** The longest DID atproto can resolve: did:web: with a 253-character host and a port (did:plc's are 32). */
const MAX_RESOLVABLE_DID_LENGTH = 'did:web:'.length + 253 + '%3A65535'.length;

/**
 * Why atproto cannot resolve the DID — a method other than did:plc and did:web, or longer than
 * either can be — or undefined. Such a DID is refused before any fetch (the upstream checks only
 * DID syntax, which allows 2,048 characters of any method).
 */
export function unresolvableDid(did: string): string | undefined {
  if (!did.startsWith('did:plc:') && !did.startsWith('did:web:')) return `${did}: atproto uses did:plc and did:web only`;
  if (did.length > MAX_RESOLVABLE_DID_LENGTH) return `${did.slice(0, 40)}…: ${did.length} characters, longer than a did:plc or did:web can be (${MAX_RESOLVABLE_DID_LENGTH})`;
  return undefined;
}

/** One fetch of a DID's document. */
interface Flight {
  /** When its request began (its document is no older); unset until then, so any refresh may join it. */
  startedAt?: number;
  fetching: Promise<AtprotoIdentity>;
}

/**
 * Resolves DIDs to their atproto identity (signing key, PDS endpoint): from the LMDB cache when
 * it has them, else from the PLC directory (did:plc) or the DID's own host (did:web), with
 * bounded concurrency, a queue bound and a timeout, and one fetch per DID however many ask.
 */
export class IdentityResolver {
  readonly #options: Required<Omit<IdentityResolverOptions, 'metrics' | 'logger'>> & Pick<IdentityResolverOptions, 'metrics' | 'logger'>;
  /**
   * The fetches per DID, oldest first: at most two running (a refresh may need one begun after
   * the other), and one more waiting for the newer to end, which every later refresh joins.
   */
  readonly #flights = new Map<string, Flight[]>();
  /** Each DID's last failure while remembered, with when its fetch began: it answers only what needs nothing newer. */
  readonly #failures = new Map<string, { error: IdentityError; startedAt: number; until: number }>();
  /**
   * Fetch slots for the PLC directory (the operator's, resolving nearly every repo) and for did:web
   * hosts (anyone's), apart: hosts that hold their answers cannot hold up did:plc lookups.
   */
  readonly #slots: { plc: FetchSlots; web: FetchSlots };
  /** When the PLC directory and each did:web host may be asked again, after a Retry-After. */
  readonly #waits = new DirectoryWaits();
  /** Aborted by stop(): ends the sleeps between retries and before a directory's time, and the fetches running. */
  readonly #stopping = new AbortController();

  constructor(options: IdentityResolverOptions) {
    this.#options = {
      ...options,
      plcUrl: options.plcUrl.replace(/\/+$/, ''),
      timeoutMs: options.timeoutMs ?? 5_000,
      maxConcurrent: options.maxConcurrent ?? 16,
      maxQueued: options.maxQueued ?? 10_000,
      maxDocumentBytes: options.maxDocumentBytes ?? 64 * 1024,
      staleAfterMs: options.staleAfterMs ?? 24 * 3_600_000,
      failureTtlMs: options.failureTtlMs ?? 30_000,
      patientRetriesMs: options.patientRetriesMs ?? [1_000, 2_000, 4_000],
    };
    const { maxConcurrent, maxQueued } = this.#options;
    this.#slots = { plc: new FetchSlots(maxConcurrent, maxQueued), web: new FetchSlots(maxConcurrent, maxQueued) };
    options.metrics?.cacheEntries.set(options.cache.size);
  }

  get allowPrivateEndpoints(): boolean {
    return this.#options.allowPrivateEndpoints;
  }

  /** The cached identity, without waiting (a stale one is refreshed in the background). */
  cached(did: string): AtprotoIdentity | undefined {
    const identity = this.#options.cache.get(did);
    if (identity && Date.now() - identity.fetchedAt > this.#options.staleAfterMs && !this.#flights.has(did)) {
      this.refresh(did, 0).catch(() => {}); // the stale entry stays in use until a fetch succeeds
    }
    return identity;
  }

  /** How many fetches may wait for a slot before more are refused as `overloaded`. */
  get maxQueued(): number {
    return this.#options.maxQueued;
  }

  /**
   * The identity from the cache, else fetched. Rejects with an IdentityError. With `wait`, a fetch
   * it starts waits for a slot however many wait already (the caller bounds them, as the Verifier
   * does by pausing the upstream), instead of failing as `overloaded`.
   */
  async resolve(did: string, wait = false): Promise<AtprotoIdentity> {
    return this.cached(did) ?? this.#refresh(did, 0, wait);
  }

  /**
   * resolve(did, true), asked again after a passing failure (a timeout, an error status, a refused
   * connection), 1, 2 and 4 s later (patientRetriesMs), before it fails: for a caller that holds work until the DID
   * resolves (the Verifier, a repo's first document), so one failure of the directory does not
   * fail the work. Each retry fetches: the failure it follows, remembered, would answer a lookup.
   * A retry may wait: one the directory asked to wait for (Retry-After) is made once its time has come.
   */
  async resolvePatiently(did: string): Promise<AtprotoIdentity> {
    return this.cached(did) ?? this.refreshPatiently(did, 0);
  }

  /**
   * refresh(did, notBefore), waiting for a slot however many wait (as resolve with `wait`), and asked
   * again after a passing failure as resolvePatiently is: for a caller that holds work until the
   * document is fetched again (the Verifier, after a signature failed with the cached key: a
   * rotated key), so one failure of the directory does not fail the work.
   */
  async refreshPatiently(did: string, notBefore = Date.now()): Promise<AtprotoIdentity> {
    for (let retry = 0; ; retry++) {
      try {
        return await this.#refresh(did, retry === 0 ? notBefore : Date.now(), true);
      } catch (err) {
        const waitMs = err instanceof IdentityError && PASSING_FAILURES.has(err.reason) ? this.#options.patientRetriesMs[retry] : undefined;
        // Stopped meanwhile, the failure is the last: no retry is made.
        if (waitMs === undefined || !(await this.#slept(waitMs))) throw err;
      }
    }
  }

  /**
   * Fetches the DID document again and caches the result: a document fetched after `notBefore`
   * (default: now), joining the newest fetch of the DID if its request began after then or has
   * yet to begin. For #identity events and signatures that fail with the cached key:
   * a rotated key is picked up before a valid commit is judged, even while a fetch begun before
   * the rotation is still running (its older document then does not replace the newer one in the
   * cache). However many ask, a DID has at most two fetches running: a third waits for the newer
   * to end, and every refresh until it begins joins it (a burst of #identity events for one DID is
   * one fetch per round trip, not one per event). A remembered failure answers the same way: only
   * a refresh that needs nothing newer than its fetch (a lookup); one asked for since fetches again,
   * but while the DID's last fetch failed, only after the running one ends (a failing directory is
   * asked one fetch of the DID at a time).
   */
  refresh(did: string, notBefore = Date.now()): Promise<AtprotoIdentity> {
    return this.#refresh(did, notBefore, false);
  }

  #refresh(did: string, notBefore: number, wait: boolean): Promise<AtprotoIdentity> {
    const flights = this.#flights.get(did) ?? [];
    const newest = flights.at(-1);
    // Only a fetch begun after `notBefore` answers: one begun in the same millisecond may have begun before it.
    if (newest && (newest.startedAt === undefined || newest.startedAt > notBefore)) return newest.fetching;
    const failed = this.#rememberedFailure(did);
    if (failed && failed.startedAt > notBefore) return Promise.reject(failed.error);
    const flight: Flight = { fetching: undefined as unknown as Promise<AtprotoIdentity> };
    const after = newest && (flights.length >= 2 || failed) ? newest.fetching.then(() => {}, () => {}) : undefined;
    flight.fetching = this.#fetch(did, flight, Date.now(), wait, after).finally(() => {
      const left = this.#flights.get(did)?.filter((other) => other !== flight) ?? [];
      if (left.length > 0) this.#flights.set(did, left);
      else this.#flights.delete(did);
    });
    flights.push(flight);
    this.#flights.set(did, flights);
    return flight.fetching;
  }

  /**
   * Ends every wait and fetch: lookups waiting (between resolvePatiently's retries, or for a
   * directory's time) fail as they would without waiting, running fetches are aborted, and later
   * lookups fail at once; the cache is not touched again, so it can be closed. Without it, a stop
   * left those sleeps' timers (up to a minute's) keeping the process alive, and the retry they
   * ended in read the closed cache.
   */
  stop(): void {
    this.#stopping.abort();
  }

  /** Forgets a cached failure, so the next refresh() fetches (e.g. after an #identity event). */
  forgetFailure(did: string): void {
    this.#failures.delete(did);
  }

  /**
   * One fetch, asked for at `requestedAt`, begun once `after` (the fetch before it) has ended; with
   * `wait`, never refused as overloaded, and made once a directory that asked to wait may be asked.
   */
  async #fetch(did: string, flight: Flight, requestedAt: number, wait: boolean, after?: Promise<void>): Promise<AtprotoIdentity> {
    const { metrics, cache } = this.#options;
    // Whatever the fetch before it brings, it began before what this one's callers need.
    await after;
    if (this.#stopping.signal.aborted) throw stoppedError(did);
    metrics?.inFlight.inc();
    const slots = did.startsWith('did:web:') ? this.#slots.web : this.#slots.plc;
    try {
      await this.#takeSlot(did, slots, wait);
    } catch (err) {
      metrics?.inFlight.dec();
      metrics?.resolutions.inc({ result: (err as IdentityError).reason });
      throw err;
    }
    const stopTimer = metrics?.resolveSeconds.startTimer();
    // The document is no older than this moment, which is its fetchedAt: a fetch that began
    // before some event (a key rotation) is never taken for one made after it.
    const startedAt = Date.now();
    flight.startedAt = startedAt;
    try {
      const identity = identityFromDocument(did, await this.#fetchDocument(did), startedAt);
      // A fetch begun earlier may end later: its older document must not replace a newer one, nor
      // come back after a newer fetch found the document gone (its failure stays remembered).
      const newer = cache.get(did);
      const failedSince = this.#failures.get(did);
      const goneSince = failedSince?.error.reason === 'not_found' && failedSince.startedAt > startedAt;
      if (!goneSince && (!newer || newer.fetchedAt <= identity.fetchedAt)) cache.put(identity);
      // A failure of a fetch that began no later says nothing more.
      if ((this.#failures.get(did)?.startedAt ?? Infinity) <= startedAt) this.#failures.delete(did);
      metrics?.cacheEntries.set(cache.size);
      metrics?.resolutions.inc({ result: 'ok' });
      return identity;
    } catch (err) {
      // Aborted by stop() (or failing on the cache it let close): nothing is remembered.
      if (this.#stopping.signal.aborted) throw stoppedError(did);
      const error = toIdentityError(did, err);
      metrics?.resolutions.inc({ result: error.reason });
      // Not remembered if a fetch asked for later already succeeded.
      if (!((cache.get(did)?.fetchedAt ?? -1) > requestedAt)) this.#rememberFailure(did, error, startedAt);
      // The directory or host says the document is gone (a tombstoned did:plc is a 410): the key
      // cached before must not go on verifying the repo's commits. Other failures say nothing of it.
      if (error.reason === 'not_found' && (cache.get(did)?.fetchedAt ?? Infinity) <= startedAt) {
        cache.delete(did);
        metrics?.cacheEntries.set(cache.size);
      }
      throw error;
    } finally {
      stopTimer?.();
      metrics?.inFlight.dec();
      slots.release();
    }
  }

  /**
   * Takes a fetch slot once the DID's directory may be asked: before then, with `wait`, waits for
   * its time (again if it asked to wait while this one waited for a slot), else fails as
   * `unreachable` saying so. Without `wait`, fails as `overloaded` past the bound on fetches waiting.
   */
  async #takeSlot(did: string, slots: FetchSlots, wait: boolean): Promise<void> {
    const directory = this.#directoryOf(did);
    for (;;) {
      for (let until = this.#waits.until(directory); until !== undefined; until = this.#waits.until(directory)) {
        if (!wait || !(await this.#slept(until - Date.now()))) {
          const asker = did.startsWith('did:web:') ? 'its did:web host' : 'the PLC directory';
          throw new IdentityError('unreachable', `${did}: ${asker} asked to wait until ${new Date(until).toISOString()} (Retry-After); not asked before then`);
        }
      }
      if (!(await slots.take(wait))) {
        throw new IdentityError('overloaded', `${this.#options.maxQueued} DID resolutions from ${slots === this.#slots.web ? 'did:web hosts' : 'the PLC directory'} are already waiting`);
      }
      if (this.#waits.until(directory) === undefined) return;
      slots.release();
    }
  }

  /** Who serves the DID's document, for its Retry-After: the PLC directory, or the did:web host (whose name's case does not matter). */
  #directoryOf(did: string): string {
    return did.startsWith('did:web:') ? did.slice('did:web:'.length).toLowerCase() : this.#options.plcUrl;
  }

  /** A 429's or 503's Retry-After: the directory is not asked before then (at most MAX_DIRECTORY_WAIT_MS); a wait that begins is said once. */
  #askedToWait(did: string, status: number, waitMs: number): void {
    if (!this.#waits.askedToWait(this.#directoryOf(did), Math.min(waitMs, MAX_DIRECTORY_WAIT_MS))) return;
    const web = did.startsWith('did:web:');
    this.#options.metrics?.directoryWaits.inc({ directory: web ? 'did_web' : 'plc' });
    this.#options.logger?.warn(
      { directory: web ? did : new URL(this.#options.plcUrl).host, status, waitMs: Math.min(waitMs, MAX_DIRECTORY_WAIT_MS) },
      `${web ? 'a did:web host' : 'the PLC directory'} asked to wait (Retry-After): until then its lookups wait, or fail as unreachable`,
    );
  }

  async #fetchDocument(did: string): Promise<unknown> {
    const { allowPrivateEndpoints, timeoutMs, maxDocumentBytes } = this.#options;
    const unresolvable = unresolvableDid(did);
    if (unresolvable) throw new IdentityError('unsupported_did', unresolvable);
    const guarded = did.startsWith('did:web:');
    const url = guarded ? didWebUrl(did, allowPrivateEndpoints) : `${this.#options.plcUrl}/${did}`;
    // The PLC URL is the operator's; a did:web host is anyone's and goes through the guard.
    const response = await getGuarded(url, { allowPrivateEndpoints: guarded ? allowPrivateEndpoints : true, timeoutMs, signal: this.#stopping.signal });
    if (response.statusCode === 404 || response.statusCode === 410) {
      response.resume();
      throw new IdentityError('not_found', `${did}: the DID document is not there (HTTP ${response.statusCode})`);
    }
    if (response.statusCode !== 200) {
      response.resume();
      const status = response.statusCode ?? 0;
      const waitMs = status === 429 || status === 503 ? retryAfter(response.headers['retry-after']) : undefined;
      if (waitMs !== undefined) this.#askedToWait(did, status, waitMs);
      const asked = waitMs === undefined ? '' : `; it asks to wait ${Math.round(waitMs / 1000)} s${waitMs > MAX_DIRECTORY_WAIT_MS ? `, contrail waits ${MAX_DIRECTORY_WAIT_MS / 1000} s` : ''}`;
      throw new IdentityError('unreachable', `${did}: HTTP ${status} from ${new URL(url).host}${asked}`, waitMs);
    }
    const body = await readBodyLimited(response, maxDocumentBytes);
    try {
      // TextDecoder drops a leading BOM, as fetch's response.json() does for @atproto/identity.
      return JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new IdentityError('bad_document', `${did}: the DID document is not JSON`);
    }
  }

  /** Sleeps `ms`; false, at once, if the resolver stops first (or has stopped). */
  async #slept(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.#stopping.signal });
      return true;
    } catch {
      return false;
    }
  }

  /** The DID's failure while it is remembered; an expired one is forgotten. */
  #rememberedFailure(did: string): { error: IdentityError; startedAt: number } | undefined {
    const failed = this.#failures.get(did);
    if (failed && failed.until > Date.now()) return failed;
    this.#failures.delete(did);
    return undefined;
  }

  #rememberFailure(did: string, error: IdentityError, startedAt: number): void {
    // A fetch begun earlier may fail later: the newer fetch's failure answers more.
    if ((this.#rememberedFailure(did)?.startedAt ?? -Infinity) > startedAt) return;
    this.#failures.delete(did);
    // The directory said when to come back (Retry-After): sooner than failureTtlMs, the DID is asked again then.
    const { failureTtlMs } = this.#options;
    const rememberMs = error.retryAfterMs === undefined ? failureTtlMs : Math.min(failureTtlMs, Math.max(error.retryAfterMs, MIN_FAILURE_MEMORY_MS));
    this.#failures.set(did, { error, startedAt, until: Date.now() + rememberMs });
    if (this.#failures.size > MAX_REMEMBERED_FAILURES) this.#failures.delete(this.#failures.keys().next().value!);
  }
}

/**
 * did:web:example.com → https://example.com/.well-known/did.json. atproto allows no path, and
 * a port only for local testing (`did:web:localhost%3A8080`), which is also the one case served
 * over plain http — and only with private endpoints allowed.
 */
export function didWebUrl(did: string, allowPrivateEndpoints: boolean): string {
  let host: string;
  try {
    host = decodeURIComponent(did.slice('did:web:'.length));
  } catch {
    throw new IdentityError('unsupported_did', `${did}: its percent-encoding is malformed, so it is not a host name`);
  }
  if (host.includes(':') && !/^localhost:\d+$/.test(host)) {
    throw new IdentityError('unsupported_did', `${did}: atproto's did:web has no path and a port only on localhost`);
  }
  if (!/^[a-z0-9.-]+(:\d+)?$/i.test(host)) throw new IdentityError('unsupported_did', `${did}: ${JSON.stringify(host)} is not a host name`);
  const scheme = host.startsWith('localhost') && allowPrivateEndpoints ? 'http' : 'https';
  return `${scheme}://${host}/.well-known/did.json`;
}

function stoppedError(did: string): IdentityError {
  return new IdentityError('unreachable', `${did}: not fetched: the resolver stopped`);
}

function toIdentityError(did: string, err: unknown): IdentityError {
  if (err instanceof IdentityError) return err;
  const message = `${did}: ${(err as Error).message}`;
  if (err instanceof FetchTimeoutError || (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') return new IdentityError('timeout', message);
  if (err instanceof RefusedEndpointError) return new IdentityError('refused_endpoint', message);
  if (err instanceof BadDocumentError || err instanceof BodyTooLargeError) return new IdentityError('bad_document', message);
  return new IdentityError('unreachable', message);
}
