/**
 * Reused memory for the partitions of whole blocks decompressed for their merge. A replay from
 * disk decompresses every event once (~550 MB for a million events); each partition in a fresh
 * buffer made the garbage collector run for the external memory alone (two young collections
 * and a full one every 64 MB of buffers, each promoting whatever events were still held) and the
 * kernel fault in every fresh page. Partitions are instead laid one after another in slabs of
 * SLAB_BYTES, and a slab nothing needs any more is filled again.
 *
 * A decoded event's JSON is a view of its slab, so a slab is refilled only when every holder of
 * such views has said it is done: each holder pins the slabs it holds — a cached merge one pin
 * per slab it spans, a read's Lease one per slab it touched — and unpins them when it lets go
 * (the partition cache holds buffers of its own, see blocks.ts). A slab whose pins are gone (and
 * that is no longer being filled) goes back to the pool. A holder that never unpins (a read whose
 * caller does not release it: the caller may keep the events for as long as it likes) only keeps
 * that slab out of the pool: the pool holds no reference to slabs in use, so the collector frees
 * it like any buffer once its views are gone. Reuse is never unsafe, only sometimes missed.
 */
export const SLAB_BYTES = 1024 * 1024;

/** Free slabs kept for reuse at most; more go to the garbage collector. */
const POOLED_SLABS = 16;

export class Slab {
  /** Bytes handed out from the start of `bytes`. */
  used = 0;
  pins = 0;

  constructor(readonly bytes: Buffer) {}
}

export class SlabPool {
  readonly #free: Slab[] = [];
  /** The slab being filled. */
  #open: Slab | undefined;

  /** `size` bytes of a slab, pinned once for the caller; a partition larger than a slab gets a buffer of its own (no slab). */
  take(size: number): { bytes: Buffer; slab?: Slab } {
    if (size > SLAB_BYTES) return { bytes: Buffer.allocUnsafeSlow(size) };
    let slab = this.#open;
    if (!slab || slab.used + size > SLAB_BYTES) {
      if (slab) this.#close(slab);
      slab = this.#open = this.#free.pop() ?? new Slab(Buffer.allocUnsafeSlow(SLAB_BYTES));
      slab.used = 0;
    }
    const bytes = slab.bytes.subarray(slab.used, slab.used + size);
    slab.used += size;
    slab.pins++;
    return { bytes, slab };
  }

  /** Drops one pin; the slab is reused once none is left and it is no longer being filled. */
  unpin(slab: Slab): void {
    if (--slab.pins === 0 && slab !== this.#open) this.#reuse(slab);
  }

  #close(slab: Slab): void {
    this.#open = undefined;
    if (slab.pins === 0) this.#reuse(slab);
  }

  #reuse(slab: Slab): void {
    if (this.#free.length < POOLED_SLABS) this.#free.push(slab);
  }
}

/**
 * The slabs one read touched, each pinned once for it, so the events it returns stay valid
 * until release(). Releasing twice is harmless; never releasing only forgoes the reuse.
 */
export class Lease {
  #slabs: Set<Slab> | undefined;

  constructor(private readonly pool: SlabPool) {}

  /** Whether it pinned any slab. */
  get holds(): boolean {
    return this.#slabs !== undefined;
  }

  hold(slab: Slab | undefined): void {
    if (!slab || this.#slabs?.has(slab)) return;
    (this.#slabs ??= new Set()).add(slab);
    slab.pins++;
  }

  release(): void {
    const slabs = this.#slabs;
    this.#slabs = undefined;
    if (slabs) for (const slab of slabs) this.pool.unpin(slab);
  }
}
