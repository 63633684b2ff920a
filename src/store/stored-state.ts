import type { Database } from 'lmdb';

/**
 * The buffer's state that its events cannot give back — `meta` (the seqs and time_us given out,
 * the upstream cursor, what was trimmed or found lost), `partitions` (each collection's partition
 * number) and `dictionaries` — read with the kind of each value checked. LMDB keeps no checksums,
 * so a value whose bytes changed on disk either no longer decodes (msgpack's error names no table
 * or key) or decodes to something else (a number read as a string, a partition number as an
 * object), which the store would take as it is: the next seq or time_us from garbage, a
 * collection's events read from another partition. Neither can be rebuilt from the events with
 * certainty, so the start is refused (DamagedStateError), naming the table and the key — except
 * the per-DID index's own values (didIndex*), which a rebuild of the index writes again (EventStore).
 */
export class DamagedStateError extends Error {
  constructor(table: string, key: string | number, problem: string) {
    super(`${table} "${key}" ${problem}`);
  }
}

/** The `meta` table's keys (see the store's design note). */
export const META = {
  cursor: 'upstreamCursor',
  lastTimeUs: 'lastTimeUs',
  trimmedUpTo: 'trimmedUpTo',
  lastSeq: 'lastSeq',
  seqFloor: 'seqFloor',
  timeUsFloor: 'timeUsFloor',
  format: 'format',
  didIndexBroken: 'didIndexBroken',
  didIndexRebuilds: 'didIndexRebuilds',
  didIndexGaps: 'didIndexGaps',
  tailDamage: 'tailDamage',
} as const;

/** What a stored value must be, and how to tell. */
interface Kind<T> {
  what: string;
  is(value: unknown): value is T;
}

const wholeNumber: Kind<number> = { what: 'a whole number', is: (value): value is number => Number.isSafeInteger(value) && (value as number) >= 0 };

const timeRanges: Kind<Array<[number, number]>> = {
  what: 'a list of time_us ranges',
  is: (value): value is Array<[number, number]> =>
    Array.isArray(value) && value.every((range) => Array.isArray(range) && range.length === 2 && wholeNumber.is(range[0]) && wholeNumber.is(range[1]) && range[0] <= range[1]),
};

const upstreamCursor: Kind<{ url: string; seq: number; through?: number; held?: Array<[string, number]> }> = {
  what: 'an upstream cursor (a url and a seq)',
  is: (value): value is { url: string; seq: number; through?: number; held?: Array<[string, number]> } => {
    if (typeof value !== 'object' || value === null) return false;
    const { url, seq, through, held } = value as Record<string, unknown>;
    return (
      typeof url === 'string' &&
      wholeNumber.is(seq) &&
      (through === undefined || wholeNumber.is(through)) &&
      (held === undefined || (Array.isArray(held) && held.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && wholeNumber.is(h[1]))))
    );
  },
};

const marked: Kind<true> = { what: 'true', is: (value): value is true => value === true };

const META_KINDS = {
  [META.cursor]: upstreamCursor,
  [META.lastTimeUs]: wholeNumber,
  [META.trimmedUpTo]: wholeNumber,
  [META.lastSeq]: wholeNumber,
  [META.seqFloor]: wholeNumber,
  [META.timeUsFloor]: wholeNumber,
  [META.format]: wholeNumber,
  [META.didIndexBroken]: marked,
  [META.didIndexRebuilds]: wholeNumber,
  [META.didIndexGaps]: timeRanges,
  [META.tailDamage]: timeRanges,
} as const;

type MetaKey = keyof typeof META_KINDS;
type MetaValue<K extends MetaKey> = (typeof META_KINDS)[K] extends Kind<infer T> ? T : never;

/** `meta`'s value under `key`, undefined if there is none; a DamagedStateError if it does not decode or is not what that key holds. */
export function readMeta<K extends MetaKey>(meta: Database<unknown, string>, key: K): MetaValue<K> | undefined {
  const value = decoded(meta, 'meta', key);
  if (value === undefined) return undefined;
  const kind: Kind<unknown> = META_KINDS[key];
  if (!kind.is(value)) throw new DamagedStateError('meta', key, `is not ${kind.what} (it reads ${shown(value)})`);
  return value as MetaValue<K>;
}

/** The per-DID index's own values in `meta` (see readDidIndexMeta). */
export interface DidIndexMeta {
  /** The index is not to be read: marked inconsistent, or one of its values is damaged. */
  bypassed: boolean;
  rebuilds: number;
  gaps: Array<[number, number]>;
  /** Why a value was taken as absent: it does not decode, or is not what its key holds. */
  damaged: DamagedStateError[];
}

/**
 * The per-DID index's mark, rebuild count and gaps, read as the EventStore and a replay worker
 * (SnapshotReader) both must: a damaged one does not refuse the buffer, since a rebuild of the
 * index writes the three again, but bypasses the index until then. Each is read on its own, so
 * damaged gaps leave a sound rebuild count as it is (the count only grows).
 */
export function readDidIndexMeta(meta: Database<unknown, string>): DidIndexMeta {
  const damaged: DamagedStateError[] = [];
  const tolerant = <K extends MetaKey>(key: K): MetaValue<K> | undefined => {
    try {
      return readMeta(meta, key);
    } catch (err) {
      if (!(err instanceof DamagedStateError)) throw err;
      damaged.push(err);
      return undefined;
    }
  };
  const broken = tolerant(META.didIndexBroken) === true;
  const rebuilds = tolerant(META.didIndexRebuilds) ?? 0;
  const gaps = tolerant(META.didIndexGaps) ?? [];
  return { bypassed: broken || damaged.length > 0, rebuilds, gaps, damaged };
}

/**
 * The `partitions` table: collection → partition number (1 up; 0 is identity, account and sync
 * events), checked as readMeta checks `meta`: no number given twice, and none past the count.
 * Numbers are given in order from 1 and never taken back (a seal that fails forgets the ones it
 * added before they are stored), so N collections are numbered 1 to N; a number that changed to
 * another one no collection has is one its blocks were not written with, and its reads would
 * take another partition's events.
 */
export function readPartitions(partitions: Database<number, string>): Map<string, number> {
  const read = new Map<string, number>();
  const collectionOf = new Map<number, string>();
  for (const collection of partitions.getKeys()) {
    const part = decoded(partitions, 'partitions', collection);
    if (!wholeNumber.is(part) || part === 0) throw new DamagedStateError('partitions', collection, `is not a partition number (it reads ${shown(part)})`);
    const other = collectionOf.get(part);
    if (other !== undefined) throw new DamagedStateError('partitions', collection, `is partition ${part}, which "${other}" is too`);
    collectionOf.set(part, collection);
    read.set(collection, part);
  }
  for (const [collection, part] of read) {
    if (part > read.size) throw new DamagedStateError('partitions', collection, `is partition ${part}, but the buffer's ${read.size} collections are numbered 1 to ${read.size}`);
  }
  return read;
}

/** The decoded value under `key`; a DamagedStateError if it does not decode. */
export function decoded<K extends string | number>(table: Database<unknown, K>, name: string, key: K): unknown {
  try {
    return table.get(key);
  } catch (err) {
    throw new DamagedStateError(name, key, `does not decode (${(err as Error).message})`);
  }
}

/** A value for an error line: its JSON, cut short. */
export function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
