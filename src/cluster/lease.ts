import type { KV } from '@nats-io/kv';

const KEY = 'leader';

/**
 * The ingest lease: one key in a NATS KV bucket whose entries expire after the lease time.
 * Taking it is a create (fails while anyone holds it); renewing updates it checked against the
 * revision this node last wrote, so a holder whose lease expired and was taken by another node can
 * never renew it back: it learns it lost, and steps down. The revision alone does not say whose
 * entry it is: a bucket removed and made again numbers its entries from 1, and another node's new
 * lease could stand at the very revision this node last wrote. So a renewal reads the entry first
 * and steps down unless it is this node's own PUT at that revision. No entry is a lease gone too
 * (expired, or its bucket made again), and not one for the update to decide: another node's take
 * landing between the read and the update, at that revision, would pass it. After this node's own
 * entry is read, the update fails if anything was written since; what it cannot tell is a bucket
 * removed, made again and taken at that revision all between the two requests. The read must be
 * as current as the update: the bucket's handle (nats.ts) reads through its stream leader, not
 * with a direct get, which any replica of a replicated bucket may answer, one behind the latest
 * writes (an older entry ended healthy leases). The lease only decides who *tries* to lead; the
 * stream's expected-last-sequence publishes (stream-writer.ts) are what make a deposed leader
 * unable to append.
 */
export class LeaderLease {
  #revision: number | undefined;

  constructor(
    private readonly kv: KV,
    readonly nodeId: string,
  ) {}

  get held(): boolean {
    return this.#revision !== undefined;
  }

  /** Takes the lease if nobody holds it; true when we now hold it. */
  async tryAcquire(): Promise<boolean> {
    try {
      this.#revision = await this.kv.create(KEY, this.nodeId);
      return true;
    } catch (err) {
      if (isWrongRevision(err)) return false;
      throw err;
    }
  }

  /** Extends the lease; false (and no longer held) when another node holds it or it expired. */
  async renew(): Promise<boolean> {
    const revision = this.#revision;
    if (revision === undefined) return false;
    // Read through the stream leader (nats.ts), so the answer is no stale one: anything but this
    // node's own entry at its revision, none included, is a lost lease or the collision.
    const entry = await this.kv.get(KEY);
    if (!(entry && entry.revision === revision && entry.operation === 'PUT' && entry.string() === this.nodeId)) {
      this.#revision = undefined;
      return false;
    }
    try {
      this.#revision = await this.kv.update(KEY, this.nodeId, revision);
      return true;
    } catch (err) {
      if (!isWrongRevision(err)) throw err;
      this.#revision = undefined;
      return false;
    }
  }

  /** Gives the lease up at a graceful stop, so another node takes over without waiting for expiry. */
  async release(): Promise<void> {
    const revision = this.#revision;
    this.#revision = undefined;
    if (revision !== undefined) await this.kv.delete(KEY, { previousSeq: revision }).catch(() => {});
  }

  /** The revision of the lease's entry while a node holds it: it changes at every renewal. */
  async holderRevision(): Promise<number | undefined> {
    const entry = await this.kv.get(KEY);
    return entry && entry.operation === 'PUT' ? entry.revision : undefined;
  }

  /** The node that holds the lease now, if any. */
  async holder(): Promise<string | undefined> {
    const entry = await this.kv.get(KEY);
    return entry && entry.operation === 'PUT' ? entry.string() : undefined;
  }
}

export function isWrongRevision(err: unknown): boolean {
  return /wrong last sequence/i.test((err as Error).message ?? '');
}
