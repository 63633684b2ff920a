import type { Subscriber } from './subscriber.ts';

/** Who is connected: every open subscriber, counted per client address and for metrics. */
export class Roster implements Iterable<Subscriber> {
  readonly #all = new Set<Subscriber>();
  readonly #perAddress = new Map<string, number>();
  #deflating = 0;

  get size(): number {
    return this.#all.size;
  }

  [Symbol.iterator](): Iterator<Subscriber> {
    return this.#all[Symbol.iterator]();
  }

  add(subscriber: Subscriber): void {
    this.#all.add(subscriber);
    if (subscriber.deflate) this.#deflating++;
    this.#perAddress.set(subscriber.remoteAddress, this.connectionsFrom(subscriber.remoteAddress) + 1);
  }

  /** False if it was not here (already removed). */
  delete(subscriber: Subscriber): boolean {
    if (!this.#all.delete(subscriber)) return false;
    if (subscriber.deflate) this.#deflating--;
    const left = this.connectionsFrom(subscriber.remoteAddress) - 1;
    if (left > 0) this.#perAddress.set(subscriber.remoteAddress, left);
    else this.#perAddress.delete(subscriber.remoteAddress);
    return true;
  }

  connectionsFrom(address: string): number {
    return this.#perAddress.get(address) ?? 0;
  }

  /** Subscribers with permessage-deflate negotiated (the operator caps how many). */
  get deflating(): number {
    return this.#deflating;
  }

  /** Subscribers by wire, compression and mode, for the gauge. */
  counts(): Array<{ wire: string; compression: string; mode: string; count: number }> {
    const tally = new Map<string, { wire: string; compression: string; mode: string; count: number }>();
    for (const s of this.#all) {
      const key = `${s.wire.name}|${s.compression}|${s.mode}`;
      const row = tally.get(key);
      if (row) row.count++;
      else tally.set(key, { wire: s.wire.name, compression: s.compression, mode: s.mode, count: 1 });
    }
    return [...tally.values()];
  }
}
