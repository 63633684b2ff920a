import { open, type Database, type RootDatabase } from 'lmdb';
import type { AtprotoIdentity } from './did-document.ts';

interface StoredIdentity {
  signingKey: string | null;
  pdsEndpoint: string | null;
  handle: string | null;
  fetchedAt: number;
}

export interface IdentityCacheOptions {
  /** Folder of the cache's own LMDB environment. */
  path: string;
  /** Entries kept; past it the least recently fetched are evicted. */
  maxEntries: number;
  /** Entries also kept decoded in memory, most recently used first. */
  memoryEntries?: number;
}

/**
 * Address space reserved per entry for the map (an entry takes ~0.3 KB in the two databases): the
 * map never has to grow. lmdb-js grows a full map by mapping the file again and keeps every old
 * map, each holding resident what it touched (as the store's buffer did: see its environment.ts).
 */
const MAP_BYTES_PER_ENTRY = 4096;

/**
 * Resolved identities in LMDB, bounded by entry count: a second database orders DIDs by fetch
 * time and the oldest are evicted first (a refresh moves a DID to the young end). Writes are
 * not synced to disk: a crash loses at most the latest entries, which are fetched again. A
 * small in-memory layer keeps the hottest DIDs decoded.
 */
export class IdentityCache {
  readonly #root: RootDatabase;
  readonly #identities: Database<StoredIdentity, string>;
  readonly #byAge: Database<string, [number, string]>;
  readonly #maxEntries: number;
  readonly #memory = new Map<string, AtprotoIdentity>();
  readonly #memoryEntries: number;
  #count: number;

  constructor(options: IdentityCacheOptions) {
    this.#root = open({ path: options.path, maxDbs: 2, noSync: true, mapSize: options.maxEntries * MAP_BYTES_PER_ENTRY });
    this.#identities = this.#root.openDB<StoredIdentity, string>({ name: 'identities' });
    this.#byAge = this.#root.openDB<string, [number, string]>({ name: 'by-age', encoding: 'string' });
    this.#maxEntries = options.maxEntries;
    this.#memoryEntries = options.memoryEntries ?? 10_000;
    this.#count = this.#identities.getCount();
  }

  get size(): number {
    return this.#count;
  }

  get(did: string): AtprotoIdentity | undefined {
    const remembered = this.#memory.get(did);
    if (remembered) {
      this.#memory.delete(did);
      this.#memory.set(did, remembered);
      return remembered;
    }
    const stored = this.#identities.get(did);
    if (!stored) return undefined;
    const identity = {
      did,
      signingKey: stored.signingKey ?? undefined,
      pdsEndpoint: stored.pdsEndpoint ?? undefined,
      handle: stored.handle ?? undefined,
      fetchedAt: stored.fetchedAt,
    };
    this.#remember(identity);
    return identity;
  }

  put(identity: AtprotoIdentity): void {
    const stored: StoredIdentity = {
      signingKey: identity.signingKey ?? null,
      pdsEndpoint: identity.pdsEndpoint ?? null,
      handle: identity.handle ?? null,
      fetchedAt: identity.fetchedAt,
    };
    // One synchronous transaction (cheap without fsync) keeps the two databases and the count
    // in step whatever else is writing.
    this.#root.transactionSync(() => {
      const previous = this.#identities.get(identity.did);
      if (previous) this.#byAge.removeSync([previous.fetchedAt, identity.did]);
      else this.#count++;
      this.#identities.putSync(identity.did, stored);
      this.#byAge.putSync([identity.fetchedAt, identity.did], '');
      if (this.#count > this.#maxEntries) this.#evict(this.#count - this.#maxEntries);
    });
    this.#remember(identity);
  }

  /** Forgets a DID (its next use resolves it again). */
  delete(did: string): void {
    this.#memory.delete(did);
    this.#root.transactionSync(() => {
      const previous = this.#identities.get(did);
      if (!previous) return;
      this.#count--;
      this.#identities.removeSync(did);
      this.#byAge.removeSync([previous.fetchedAt, did]);
    });
  }

  async close(): Promise<void> {
    await this.#root.close();
  }

  #evict(excess: number): void {
    for (const [fetchedAt, did] of [...this.#byAge.getKeys({ limit: excess })]) {
      this.#memory.delete(did);
      this.#identities.removeSync(did);
      this.#byAge.removeSync([fetchedAt, did]);
      this.#count--;
    }
  }

  #remember(identity: AtprotoIdentity): void {
    this.#memory.delete(identity.did);
    this.#memory.set(identity.did, identity);
    if (this.#memory.size > this.#memoryEntries) this.#memory.delete(this.#memory.keys().next().value!);
  }
}
