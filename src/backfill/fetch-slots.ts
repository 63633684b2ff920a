/**
 * Slots for repo fetches: at most `perHost` run against one PDS host at a time, at most `perAsker`
 * for one subscriber, and at most `total` overall (each fetch holds up to a repo's bytes in
 * memory, so the total bounds memory).
 *
 * Why a bound per subscriber: the host bound alone does not stop one subscriber from taking
 * every slot, since DID documents are written by their owners and a did:web owner can name as
 * many hosts as it likes, each one never answering. And why a free slot goes to the waiter whose
 * subscriber runs the fewest fetches (the earliest among those): a subscriber with many repos
 * queued would otherwise take each slot back as it frees, ahead of one that holds none.
 */
export class FetchSlots {
  readonly #perHostActive = new Map<string, number>();
  readonly #perAskerActive = new Map<number, number>();
  readonly #waiting: Array<{ host: string; asker: number; start: () => void }> = [];
  #total = 0;

  constructor(
    readonly perHost: number,
    readonly perAsker: number,
    readonly total: number,
  ) {}

  /** Runs `task` for subscriber `asker` once a slot for `host` is free. */
  async run<T>(host: string, asker: number, task: () => Promise<T>): Promise<T> {
    await new Promise<void>((start) => {
      this.#waiting.push({ host, asker, start });
      this.#startWaiting();
    });
    try {
      return await task();
    } finally {
      release(this.#perHostActive, host);
      release(this.#perAskerActive, asker);
      this.#total--;
      this.#startWaiting();
    }
  }

  #startWaiting(): void {
    while (this.#total < this.total) {
      let chosen = -1;
      let fewest = this.perAsker;
      for (let i = 0; i < this.#waiting.length && fewest > 0; i++) {
        const { host, asker } = this.#waiting[i]!;
        const held = this.#perAskerActive.get(asker) ?? 0;
        if (held >= fewest || (this.#perHostActive.get(host) ?? 0) >= this.perHost) continue;
        chosen = i;
        fewest = held;
      }
      if (chosen < 0) return;
      const { host, asker, start } = this.#waiting.splice(chosen, 1)[0]!;
      this.#perHostActive.set(host, (this.#perHostActive.get(host) ?? 0) + 1);
      this.#perAskerActive.set(asker, (this.#perAskerActive.get(asker) ?? 0) + 1);
      this.#total++;
      start();
    }
  }
}

function release<K>(active: Map<K, number>, key: K): void {
  const left = (active.get(key) ?? 1) - 1;
  if (left > 0) active.set(key, left);
  else active.delete(key);
}
