import type { Entry } from '../events/entry.ts';
import { hasCollectionFilter, wantsCollection, type SubscriberFilter } from './filter.ts';

/**
 * Subscribers at the live tip, bucketed so that an event reaches only the subscribers that
 * might want it: unfiltered ones, those wanting its DID, and those wanting its collection
 * (exactly or by a prefix at one of its dots). Identity and account events also go to every
 * collection-only subscriber. A subscriber sits in exactly one family of buckets, and its
 * filter is normalised (see parseFilter) so no event reaches it twice.
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
    const { filter } = subscriber;
    this.#size++;
    if (filter.dids.size > 0) {
      for (const did of filter.dids) addTo(this.#byDid, did, subscriber);
    } else if (hasCollectionFilter(filter)) {
      this.#collectionOnly.add(subscriber);
      for (const collection of filter.collections) addTo(this.#byCollection, collection, subscriber);
      for (const prefix of filter.prefixes) addTo(this.#byPrefix, prefix, subscriber);
    } else {
      this.#unfiltered.add(subscriber);
    }
  }

  /** Must be called with the same filter the subscriber was added with. */
  remove(subscriber: S): void {
    const { filter } = subscriber;
    this.#size--;
    if (filter.dids.size > 0) {
      for (const did of filter.dids) removeFrom(this.#byDid, did, subscriber);
    } else if (hasCollectionFilter(filter)) {
      this.#collectionOnly.delete(subscriber);
      for (const collection of filter.collections) removeFrom(this.#byCollection, collection, subscriber);
      for (const prefix of filter.prefixes) removeFrom(this.#byPrefix, prefix, subscriber);
    } else {
      this.#unfiltered.delete(subscriber);
    }
  }

  /**
   * Calls visit(subscriber) once for every subscriber whose filter accepts the entry, and
   * tooLarge(subscriber) for those that want it but set a smaller maxMessageSizeBytes.
   */
  forEachMatch(entry: Entry, visit: (subscriber: S) => void, tooLarge: (subscriber: S) => void): void {
    const size = entry.json.byteLength;
    const offer = (subscriber: S) => {
      const limit = subscriber.filter.maxMessageBytes;
      if (limit === 0 || size <= limit) visit(subscriber);
      else tooLarge(subscriber);
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
