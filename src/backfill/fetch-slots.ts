import { BackfillFailure } from './failure.ts';

/**
 * Slots for repo fetches: at most `perHost` run against one PDS host at a time, at most `perAsker`
 * for one subscriber, and at most `total` overall (each fetch holds up to a repo's bytes in
 * memory, so the total bounds memory).
 *
 * Why a bound per subscriber: the host bound alone does not stop one subscriber from taking
 * every slot, since DID documents are written by their owners and a did:web owner can name as
 * many hosts as it likes, each one never answering. And why a free slot goes to the waiter whose
 * subscriber runs the fewest fetches (the earliest among those): a subscriber with many repos
 * queued would otherwise take each slot back as it frees, ahead of one that holds none. A fetch
 * cancelled while it waits leaves the queue then: while the slots are busy (PDSes that hang), a
 * queue that kept each leaving subscriber's requests until a slot freed would grow with every
 * connection that asked and left.
 */
export class FetchSlots {
  readonly #perHostActive = new Map<string, number>();
  readonly #perAskerActive = new Map<number, number>();
  /** In arrival order (a Set: a cancelled waiter leaves without a scan of the queue). */
  readonly #waiting = new Set<Waiter>();
  #total = 0;

  constructor(
    readonly perHost: number,
    readonly perAsker: number,
    readonly total: number,
  ) {}

  /** Runs `task` for subscriber `asker` once a slot for `host` is free; `signal` cancels it while it waits. */
  async run<T>(host: string, asker: number, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await new Promise<void>((start, cancelled) => {
      if (signal?.aborted) return cancelled(notWanted());
      const leave = () => {
        this.#waiting.delete(waiter);
        cancelled(notWanted());
      };
      const waiter: Waiter = {
        host,
        asker,
        start: () => {
          signal?.removeEventListener('abort', leave);
          start();
        },
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.#waiting.add(waiter);
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
      let chosen: Waiter | undefined;
      let fewest = this.perAsker;
      for (const waiter of this.#waiting) {
        const held = this.#perAskerActive.get(waiter.asker) ?? 0;
        if (held >= fewest || (this.#perHostActive.get(waiter.host) ?? 0) >= this.perHost) continue;
        chosen = waiter;
        fewest = held;
        if (fewest === 0) break;
      }
      if (!chosen) return;
      this.#waiting.delete(chosen);
      const { host, asker, start } = chosen;
      this.#perHostActive.set(host, (this.#perHostActive.get(host) ?? 0) + 1);
      this.#perAskerActive.set(asker, (this.#perAskerActive.get(asker) ?? 0) + 1);
      this.#total++;
      start();
    }
  }
}

interface Waiter {
  host: string;
  asker: number;
  start: () => void;
}

function notWanted(): BackfillFailure {
  return new BackfillFailure('fetch_failed', 'cancelled: no subscriber waits for it any more');
}

function release<K>(active: Map<K, number>, key: K): void {
  const left = (active.get(key) ?? 1) - 1;
  if (left > 0) active.set(key, left);
  else active.delete(key);
}
