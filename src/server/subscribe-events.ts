import type { EventKind } from '../events/index.ts';
import { DamagedBlockError, oldestOrUnreadable, UnreadableBufferError, type EventStore, type OldestHeld } from '../store/index.ts';
import { EVENT_KINDS, OptionError, parseFilter, type SubscriberFilter } from './filter.ts';
import { positionAtTime, startsAtOldest } from './subscriber.ts';
import type { HttpReply, HttpRequestInfo } from './transport.ts';
import { v2FrameBytes, v2InfoFrame } from './v2-frames.ts';

/**
 * Jetstream v2's request side: the subscribeEvents query (lexicon
 * network.bsky.jetstream.subscribeEvents), its cursor (a seq, or a unix-µs timestamp at or
 * above 10^15) resolved to a position in the same buffer /subscribe reads, and XRPC errors
 * (`{"error","message"}` JSON) for everything refused before the upgrade.
 */
export class XrpcError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

export function xrpcReply(status: number, error: string, message: string): HttpReply {
  return {
    status,
    headers: { 'access-control-allow-origin': '*', 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify({ error, message }),
  };
}

const MAX_KINDS = EVENT_KINDS.length;
const MAX_FRAME_LIMIT = 4_294_967_295;
/** zstd dictionary IDs are 32-bit. */
const MAX_DICTIONARY_ID = 4_294_967_295;
/** Cursors at or above this are unix microseconds, below it seqs (as Jetstream v2). */
export const TIMESTAMP_CURSOR_FLOOR = 1e15;

/** v1 names and what replaces them in v2, so a client moving over learns the new name. */
const V1_PARAMETERS: Record<string, string> = {
  wantedCollections: 'use collections',
  wantedDids: 'use dids',
  wantedKinds: 'use kinds',
  heartbeat: 'v2 has no heartbeat messages: WebSocket pings keep the connection alive',
  compress: 'use zstdDictionary=<id> (see network.bsky.jetstream.getZstdDictionary)',
  requireHello: 'v2 takes no client messages: filters are fixed by the query at connect',
  backfill: 'v2 frames carry a seq to resume from, and backfilled records have none: backfill on /subscribe',
};

export interface SubscribeEventsQuery {
  filter: SubscriberFilter;
  cursor?: number;
  zstd: boolean;
}

const invalid = (message: string) => new XrpcError(400, 'InvalidRequest', message);

export function parseSubscribeEventsQuery(request: HttpRequestInfo, dictionaryId: number): SubscribeEventsQuery {
  const query = new URLSearchParams(request.query);
  for (const [name, instead] of Object.entries(V1_PARAMETERS)) {
    if (query.has(name)) throw invalid(`${name} is a /subscribe (v1) parameter: ${instead}`);
  }
  if (request.header('socket-encoding') !== undefined) {
    throw invalid('the Socket-Encoding header is /subscribe (v1) only: use zstdDictionary=<id> (see network.bsky.jetstream.getZstdDictionary)');
  }
  const kindValues = query.getAll('kinds');
  if (kindValues.length > MAX_KINDS) throw invalid(`kinds: ${kindValues.length} given, at most ${MAX_KINDS} allowed`);
  for (const kind of kindValues) {
    if (!EVENT_KINDS.includes(kind as EventKind)) throw invalid(`kinds: ${JSON.stringify(kind)} is not one of ${EVENT_KINDS.join(', ')}`);
  }
  const kinds = new Set(kindValues as EventKind[]);
  const collections = query.getAll('collections');
  if (collections.length > 0 && kinds.size > 0 && !kinds.has('commit')) {
    throw invalid('collections constrains commit events only, and kinds excludes commit: add kinds=commit or drop collections');
  }
  let filter: SubscriberFilter;
  try {
    filter = parseFilter({ wantedCollections: collections, wantedDids: query.getAll('dids') }, { collections: 'collections', dids: 'dids' });
  } catch (err) {
    if (err instanceof OptionError) throw invalid(err.message);
    throw err;
  }
  const maxMessageBytes = integerParam(query, 'maxMessageSizeBytes', MAX_FRAME_LIMIT) ?? 0;
  const cursor = integerParam(query, 'cursor', Number.MAX_SAFE_INTEGER);
  const dictionary = dictionaryIdParam(query, 'zstdDictionary');
  if (dictionary !== undefined && dictionary !== dictionaryId) {
    throw new XrpcError(
      400,
      'UnknownZstdDictionary',
      `zstdDictionary ${dictionary} is not served here; the current dictionary is ${dictionaryId} (GET /xrpc/network.bsky.jetstream.getZstdDictionary)`,
    );
  }
  return { filter: { ...filter, kinds, maxMessageBytes, frameBytes: v2FrameBytes }, cursor, zstd: dictionary !== undefined };
}

/**
 * A dictionary ID: subscribeEvents' zstdDictionary and getZstdDictionary's id, read alike, so one
 * value names the same dictionary on both (absent: undefined; junk or a repeat: a 400 XrpcError).
 */
export function dictionaryIdParam(query: URLSearchParams, name: string): number | undefined {
  return integerParam(query, name, MAX_DICTIONARY_ID);
}

/** A non-negative integer parameter (absent: undefined); anything else is a 400. */
function integerParam(query: URLSearchParams, name: string, max: number): number | undefined {
  const values = query.getAll(name);
  const [value] = values;
  if (value === undefined) return undefined;
  if (values.length > 1) throw invalid(`${name}: given ${values.length} times, once at most`);
  const number = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(number <= max)) throw invalid(`${name}: ${JSON.stringify(value)} is not an integer from 0 to ${max}`);
  return number;
}

export interface ResolvedCursor {
  /** The hub's position: the time_us after which the subscriber's stream starts. */
  position: number;
  /** The #info frame to send first, if the cursor was adjusted (the Admission's greeting), made when it is sent. */
  greeting?: (start?: OldestHeld) => Buffer;
  /** A timestamp at or below what retention had removed: it follows the oldest event held (startsAtOldest). */
  fromOldest?: boolean;
}

/** Whether resolveCursor would take the cursor for a future one (a seq beyond the next, a timestamp after the newest). */
export function cursorAhead(store: Pick<EventStore, 'lastTimeUs' | 'lastSeq'>, cursor: number | undefined): boolean {
  if (cursor === undefined) return false;
  // Not nextSeq: a cluster node (the only caller) numbers its events with its leader's seqs, which
  // its own set-aside buffer's floor says nothing of, so a cursor past its newest waits to be settled.
  return cursor >= TIMESTAMP_CURSOR_FLOOR ? cursor > store.lastTimeUs : cursor > store.lastSeq + 1;
}

/**
 * The seq the buffer's next event gets: after its newest, or in a buffer that has stored none yet,
 * after every seq a buffer a machine crash set aside gave out (its own numbering starts there).
 */
function nextSeq(store: Pick<EventStore, 'lastSeq' | 'setAsideSeqUpTo'>): number {
  return (store.lastSeq || store.setAsideSeqUpTo) + 1;
}

/**
 * Where a v2 cursor starts, inclusive. A seq older than the buffer is refused (CursorTooOld, the
 * client must re-sync from elsewhere), and so is one a buffer a machine crash set aside gave out,
 * also while this one holds no event yet; a timestamp starts where v1's does: one at or below what
 * retention removed follows the oldest event, with an OutdatedCursor notice, one above it starts
 * there silently (with the notice if it names an event of a buffer a machine crash set aside
 * that is not held here), and a future one is live. A seq this buffer never held (a gap) starts at the
 * next seq held with an OutdatedCursor notice; a seq beyond the next one starts live with a
 * FutureCursor notice. A cursor whose place LMDB cannot look up (a page of the block directory
 * damaged on disk, also one that went bad while serving) is refused with BufferUnreadable (503);
 * a seq in a damaged block starts at the block and meets it there.
 */
export function resolveCursor(store: EventStore, cursor: number | undefined): ResolvedCursor {
  const tip = store.hotLog.newest;
  if (cursor === undefined) return { position: tip };
  if (cursor >= TIMESTAMP_CURSOR_FLOOR) {
    // Where v1's starts: future = after the last time_us issued (the wall clock may have stepped back).
    const position = positionAtTime(store, cursor);
    // Made when sent: a subscriber that follows the oldest event gets it as its replay starts,
    // naming the oldest event held when what it is sent was read (`start`), or else the oldest held now.
    const outdated = (start: OldestHeld | undefined = oldestIfReadable(store)) => {
      const resumedAt = start?.oldest;
      const resumed = resumedAt ? `resuming from seq ${resumedAt.seq}, the oldest event here` : start ? 'the buffer is empty; resuming at the live tip' : 'resuming from the oldest event here';
      return v2InfoFrame('OutdatedCursor', `cursor ${cursor} is older than this server's buffer: events may have been missed; ${resumed}`);
    };
    if (startsAtOldest(store, cursor)) return { position, greeting: outdated, fromOldest: true };
    // After what retention removed no event it names is gone (none was stored between trimmedUpTo
    // and the oldest event), unless a machine crash set aside a buffer that gave out events up to
    // setAsideUpTo: one before the oldest event held among those is lost.
    const held = oldestHeld(store);
    if (cursor <= store.setAsideUpTo && !(held && cursor >= held.timeUs)) return { position, greeting: () => outdated({ oldest: held }) };
    return { position };
  }
  const oldest = oldestHeld(store);
  // Seqs start at 1: a cursor of 0 asks for the first.
  const firstWanted = Math.max(cursor, 1);
  // A seq a buffer set aside after a machine crash gave out: its events are gone. Not a future
  // one before this buffer's first commit (its seqs start above it), unless held here (a cluster
  // node's buffer holds the leader's seqs again).
  if (firstWanted <= store.setAsideSeqUpTo && !(oldest && firstWanted >= oldest.seq)) {
    const here = oldest ? `the oldest seq here is ${oldest.seq}` : 'this buffer holds no event yet';
    throw new XrpcError(400, 'CursorTooOld', `cursor ${cursor} is older than this server's buffer: seqs up to ${store.setAsideSeqUpTo} were a buffer's that a machine crash set aside; ${here}`);
  }
  const next = nextSeq(store);
  if (cursor > next) {
    return { position: tip, greeting: () => v2InfoFrame('FutureCursor', `cursor ${cursor} is beyond the next seq (${next}); starting at the live tip`) };
  }
  const oldestSeq = oldest?.seq ?? next;
  if (firstWanted < oldestSeq) {
    throw new XrpcError(400, 'CursorTooOld', `cursor ${cursor} is older than this server's buffer: the oldest seq here is ${oldestSeq}`);
  }
  let at: ReturnType<EventStore['atSeq']>;
  try {
    at = store.atSeq(firstWanted);
  } catch (err) {
    // The seq's block cannot be read: the replay starts at the block and ends there saying which events are lost (replay-step.ts).
    if (err instanceof DamagedBlockError) return { position: err.first - 1 };
    // Nothing says where the seq's events are: refused before the upgrade, with LMDB's reason (the store logs it).
    if (err instanceof UnreadableBufferError) throw new XrpcError(503, 'BufferUnreadable', err.message);
    throw err;
  }
  if (at === undefined) return { position: tip };
  if (at.seq > firstWanted) {
    // Seqs are consecutive: these are missing here (a cluster node whose stream dropped batches before it read them).
    const missing = at.seq === firstWanted + 1 ? `seq ${firstWanted} is` : `seqs ${firstWanted}–${at.seq - 1} are`;
    return { position: at.timeUs - 1, greeting: () => v2InfoFrame('OutdatedCursor', `${missing} not in this server's buffer: events may have been missed; resuming from seq ${at.seq}`) };
  }
  return { position: at.timeUs - 1 };
}

/** The oldest event held now, for a notice; undefined when LMDB cannot read the block directory (the notice then names no seq). */
function oldestIfReadable(store: EventStore): OldestHeld | undefined {
  const oldest = oldestOrUnreadable(store);
  return oldest instanceof UnreadableBufferError ? undefined : { oldest };
}

/** The oldest event held; a block directory LMDB cannot read refuses the cursor with BufferUnreadable (503), LMDB's reason given (the store logs it). */
function oldestHeld(store: EventStore): ReturnType<EventStore['oldest']> {
  const oldest = oldestOrUnreadable(store);
  if (oldest instanceof UnreadableBufferError) throw new XrpcError(503, 'BufferUnreadable', oldest.message);
  return oldest;
}
