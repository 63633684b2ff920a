import { isDid, isNsid } from '../atproto/index.ts';
import type { Entry, EventKind } from '../events/index.ts';

export const MAX_WANTED_COLLECTIONS = 100;
export const MAX_WANTED_DIDS = 10_000;

/** Every kind of event; v1's streams send the first three unless `wantedKinds` asks otherwise. */
export const EVENT_KINDS: readonly EventKind[] = ['commit', 'identity', 'account', 'sync'];
/** What a v1 client gets without `wantedKinds`: Jetstream v1's kinds, so it sees nothing new. */
const V1_KINDS: ReadonlySet<EventKind> = new Set(['commit', 'identity', 'account']);

/**
 * What one subscriber wants. Collections filter commit events only; DIDs filter every kind.
 * Empty sets mean "no filter". Prefixes are stored with their trailing dot (`app.bsky.`);
 * an exact collection already covered by a prefix, or a prefix covered by a shorter one, is
 * dropped so that an event matches at most one entry of a filter (the live index relies on it).
 */
export interface SubscriberFilter {
  collections: ReadonlySet<string>;
  prefixes: readonly string[];
  dids: ReadonlySet<string>;
  /** Event kinds wanted (v1's `wantedKinds`, v2's `kinds`); empty = every kind. */
  kinds: ReadonlySet<EventKind>;
  /** Events whose frame is larger are skipped; 0 = no limit. */
  maxMessageBytes: number;
  /** The length of an event's frame on the subscriber's wire (v1: its JSON). */
  frameBytes: (entry: Entry) => number;
}

export class OptionError extends Error {}

export interface FilterInput {
  wantedCollections?: readonly unknown[];
  wantedDids?: readonly unknown[];
  /** Absent or empty: v1's kinds (commit, identity, account). */
  wantedKinds?: readonly unknown[];
  /** A JSON number (an options_update's), or a query string's read by queryMaxMessageBytes; absent: no limit. */
  maxMessageSizeBytes?: unknown;
}

/** What the parameters are called in the client's protocol, for error messages (v1's by default). */
export interface FilterParamNames {
  collections: string;
  dids: string;
}

const V1_NAMES: FilterParamNames = { collections: 'wantedCollections', dids: 'wantedDids' };

export function parseFilter(input: FilterInput, names: FilterParamNames = V1_NAMES): SubscriberFilter {
  const exact = new Set<string>();
  const prefixSet = new Set<string>();
  for (const value of input.wantedCollections ?? []) {
    if (typeof value !== 'string') throw new OptionError(`${names.collections}: ${JSON.stringify(value)} is not a string`);
    if (value.endsWith('.*')) {
      const prefix = value.slice(0, -1);
      if (!isCollectionPrefix(prefix)) {
        throw new OptionError(`${names.collections}: ${JSON.stringify(value)} is not a valid NSID prefix (e.g. app.bsky.feed.*)`);
      }
      prefixSet.add(prefix);
    } else if (isNsid(value)) {
      exact.add(value);
    } else {
      throw new OptionError(`${names.collections}: ${JSON.stringify(value)} is neither an NSID nor a prefix ending in .*`);
    }
  }
  // The limit counts what is left once covered entries are dropped (the README's "after de-duplication").
  const prefixes = outermostPrefixes(prefixSet);
  const collections = new Set([...exact].filter((c) => !coveredByPrefix(prefixSet, c)));
  if (prefixes.length + collections.size > MAX_WANTED_COLLECTIONS) {
    throw new OptionError(`${names.collections}: ${prefixes.length + collections.size} given, at most ${MAX_WANTED_COLLECTIONS} allowed`);
  }
  const dids = new Set<string>();
  for (const value of input.wantedDids ?? []) {
    if (!isDid(value)) throw new OptionError(`${names.dids}: ${JSON.stringify(value)} is not a valid DID`);
    dids.add(value);
  }
  if (dids.size > MAX_WANTED_DIDS) {
    throw new OptionError(`${names.dids}: ${dids.size} given, at most ${MAX_WANTED_DIDS} allowed`);
  }
  const kinds = parseKinds(input.wantedKinds ?? []);
  if (prefixes.length + collections.size > 0 && !kinds.has('commit')) {
    throw new OptionError(`${names.collections} constrains commit events only, and wantedKinds excludes commit: add commit to wantedKinds or drop ${names.collections}`);
  }
  return { collections, prefixes, dids, kinds, maxMessageBytes: parseMaxMessageBytes(input.maxMessageSizeBytes), frameBytes: jsonBytes };
}

function parseKinds(values: readonly unknown[]): ReadonlySet<EventKind> {
  if (values.length === 0) return V1_KINDS;
  for (const value of values) {
    if (!EVENT_KINDS.includes(value as EventKind)) throw new OptionError(`wantedKinds: ${JSON.stringify(value)} is not one of ${EVENT_KINDS.join(', ')}`);
  }
  return new Set(values as EventKind[]);
}

const jsonBytes = (entry: Entry) => entry.json.byteLength;

/** Go's strconv integer syntax (Atoi, ParseInt in base 10): an optional sign, then ASCII digits. */
const GO_INTEGER = /^[+-]?[0-9]+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Jetstream v1 keeps the limit in a uint32; from here up it wraps there (2^32 + 10 → 10), and here means no limit. */
const NO_LIMIT_FROM = 2 ** 32;

/** A Go int64 written as Go's strconv reads it, or undefined where strconv fails (bad syntax, out of range). */
export function goInt64(text: string): bigint | undefined {
  if (!GO_INTEGER.test(text)) return undefined;
  const value = BigInt(text);
  return value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
}

/**
 * The size limit of an options_update, a JSON number, which v1 decodes into a Go int: anything
 * else is refused, as v1 closes the connection on it. Negative is no limit, as in v1; so is 2^32
 * or more, which v1 wraps in its uint32. (JavaScript cannot tell 2^63 - 1 from 2^63: both pass.)
 */
function parseMaxMessageBytes(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < Number(INT64_MIN) || value > Number(INT64_MAX)) {
    throw new OptionError(`maxMessageSizeBytes: ${JSON.stringify(value)} is not an integer number of bytes`);
  }
  return value > 0 && value < NO_LIMIT_FROM ? value : 0;
}

/**
 * The size limit of a query string, read as v1 does (strconv.Atoi): junk, a number in another
 * syntax (0x10, 1e3, ' 400') or one out of int64's range is no limit, as is an absent one.
 */
export function queryMaxMessageBytes(text: string | null): number {
  const limit = text === null ? undefined : goInt64(text);
  return limit === undefined ? 0 : parseMaxMessageBytes(Number(limit));
}

/**
 * The prefixes no other one covers (`app.` covers `app.bsky.`), in the order given. Sorted, the
 * prefixes a prefix covers follow it at once, so one pass finds them: linear after the sort, as
 * the limit is checked only after this, on input of any length.
 */
function outermostPrefixes(prefixes: ReadonlySet<string>): string[] {
  const covered = new Set<string>();
  let outer: string | undefined;
  for (const prefix of [...prefixes].sort()) {
    if (outer !== undefined && prefix.startsWith(outer)) covered.add(prefix);
    else outer = prefix;
  }
  return [...prefixes].filter((prefix) => !covered.has(prefix));
}

/** Whether one of the prefixes covers the collection: each of its heads up to a dot is looked up. */
function coveredByPrefix(prefixes: ReadonlySet<string>, collection: string): boolean {
  for (let dot = collection.indexOf('.'); dot >= 0; dot = collection.indexOf('.', dot + 1)) {
    if (prefixes.has(collection.slice(0, dot + 1))) return true;
  }
  return false;
}

/** `app.bsky.` — one or more NSID domain segments, each followed by a dot. */
function isCollectionPrefix(prefix: string): boolean {
  return /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+$/.test(prefix) && /^[a-zA-Z]/.test(prefix) && prefix.length <= 317;
}

export function hasCollectionFilter(filter: SubscriberFilter): boolean {
  return filter.collections.size > 0 || filter.prefixes.length > 0;
}

/** Whether the filter wants the event by its DID, kind and collection (its size is checked apart). */
export function wantsEvent(filter: SubscriberFilter, entry: Entry): boolean {
  if (filter.dids.size > 0 && !filter.dids.has(entry.did)) return false;
  if (filter.kinds.size > 0 && !filter.kinds.has(entry.kind)) return false;
  // A stored entry makes its collection string only when read: no collection filter, no string.
  return !hasCollectionFilter(filter) || wantsCollection(filter, entry.collection);
}

export function isTooLarge(filter: SubscriberFilter, entry: Entry): boolean {
  return filter.maxMessageBytes > 0 && filter.frameBytes(entry) > filter.maxMessageBytes;
}

/** Whether the event is sent: wanted and within the size limit; tooLarge hears of a wanted event over the limit. */
export function sendsEvent(filter: SubscriberFilter, entry: Entry, tooLarge: () => void): boolean {
  if (!wantsEvent(filter, entry)) return false;
  if (!isTooLarge(filter, entry)) return true;
  tooLarge();
  return false;
}

/** Repo-level events (identity, account, sync: collection null) pass every collection filter. */
export function wantsCollection(filter: SubscriberFilter, collection: string | null): boolean {
  if (collection === null || !hasCollectionFilter(filter)) return true;
  if (filter.collections.has(collection)) return true;
  for (const prefix of filter.prefixes) if (collection.startsWith(prefix)) return true;
  return false;
}
