import type { Entry } from '../events/index.ts';
import { hasCollectionFilter, isTooLarge, wantsCollection, type SubscriberFilter } from './filter.ts';

/**
 * Subscribers at the live tip, bucketed so that an event reaches only the subscribers that
 * might want it: unfiltered ones, those wanting its DID, and those wanting its collection
 * (exactly or by a prefix at one of its dots). Repo-level events (identity, account, sync) also
 * go to every collection-only subscriber. The kinds filter (v1's wantedKinds, v2's kinds) is
 * checked as each subscriber is offered an event. A subscriber sits in exactly one family of
 * buckets, and its filter is normalised (see parseFilter) so no event reaches it twice.
 */
export class LiveIndex<S extends { readonly filter: SubscriberFilter }> {
  readonly #unfiltered = new Set<S>();
  readonly #byDid = new Map<string, Set<S>>();
  readonly #byCollection = new Map<string, Set<S>>();
  readonly #byPrefix = new Map<string, Set<S>>();
  readonly #collectionOnly = new Set<S>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(subscriber: S): void {
    this.#size++;
    this.#file(subscriber, true);
  }

  /** Must be called with the same filter the subscriber was added with. */
  remove(subscriber: S): void {
    this.#size--;
    this.#file(subscriber, false);
  }

  /** Puts the subscriber into, or takes it out of, every bucket its filter names. */
  #file(subscriber: S, add: boolean): void {
    const { filter } = subscriber;
    const update = (map: Map<string, Set<S>>, key: string) => (add ? addTo(map, key, subscriber) : removeFrom(map, key, subscriber));
    if (filter.dids.size > 0) {
      for (const did of filter.dids) update(this.#byDid, did);
    } else if (hasCollectionFilter(filter)) {
      if (add) this.#collectionOnly.add(subscriber);
      else this.#collectionOnly.delete(subscriber);
      for (const collection of filter.collections) update(this.#byCollection, collection);
      for (const prefix of filter.prefixes) update(this.#byPrefix, prefix);
    } else if (add) {
      this.#unfiltered.add(subscriber);
    } else {
      this.#unfiltered.delete(subscriber);
    }
  }

  /** The entries each subscriber accepts, in order (tooLarge as in forEachMatch). */
  batches(entries: readonly Entry[], tooLarge: (subscriber: S, entry: Entry) => void): Map<S, Entry[]> {
    const batches = new Map<S, Entry[]>();
    for (const entry of entries) {
      this.forEachMatch(
        entry,
        (subscriber) => {
          const batch = batches.get(subscriber);
          if (batch) batch.push(entry);
          else batches.set(subscriber, [entry]);
        },
        tooLarge,
      );
    }
    return batches;
  }

  /**
   * Calls visit(subscriber) once for every subscriber whose filter accepts the entry, and
   * tooLarge(subscriber, entry) for those that want it but set a smaller maxMessageSizeBytes.
   */
  forEachMatch(entry: Entry, visit: (subscriber: S) => void, tooLarge: (subscriber: S, entry: Entry) => void): void {
    const offer = (subscriber: S) => {
      const { kinds } = subscriber.filter;
      if (kinds.size > 0 && !kinds.has(entry.kind)) return;
      if (isTooLarge(subscriber.filter, entry)) tooLarge(subscriber, entry);
      else visit(subscriber);
    };
    for (const subscriber of this.#unfiltered) offer(subscriber);
    const byDid = this.#byDid.get(entry.did);
    if (byDid) for (const subscriber of byDid) if (wantsCollection(subscriber.filter, entry.collection)) offer(subscriber);
    const collection = entry.collection;
    if (collection === null) {
      for (const subscriber of this.#collectionOnly) offer(subscriber);
      return;
    }
    const exact = this.#byCollection.get(collection);
    if (exact) for (const subscriber of exact) offer(subscriber);
    if (this.#byPrefix.size === 0) return;
    for (let dot = collection.indexOf('.'); dot >= 0; dot = collection.indexOf('.', dot + 1)) {
      const byPrefix = this.#byPrefix.get(collection.slice(0, dot + 1));
      if (byPrefix) for (const subscriber of byPrefix) offer(subscriber);
    }
  }
}

function addTo<S>(map: Map<string, Set<S>>, key: string, subscriber: S): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(subscriber);
}

function removeFrom<S>(map: Map<string, Set<S>>, key: string, subscriber: S): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(subscriber);
  if (set.size === 0) map.delete(key);
}
