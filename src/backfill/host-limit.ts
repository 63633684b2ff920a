/**
 * At most `perHost` fetches run against one PDS host at a time, and at most `total` overall (each
 * fetch holds up to a repo's bytes in memory, so the total bounds memory). Waiters are served in
 * arrival order.
 */
export class HostLimiter {
  readonly #active = new Map<string, number>();
  readonly #waiting: Array<{ host: string; start: () => void }> = [];
  #total = 0;

  constructor(
    readonly perHost: number,
    readonly total: number,
  ) {}

  /** Runs `task` once a slot for `host` is free. */
  async run<T>(host: string, task: () => Promise<T>): Promise<T> {
    await new Promise<void>((start) => {
      this.#waiting.push({ host, start });
      this.#startWaiting();
    });
    try {
      return await task();
    } finally {
      const left = (this.#active.get(host) ?? 1) - 1;
      if (left > 0) this.#active.set(host, left);
      else this.#active.delete(host);
      this.#total--;
      this.#startWaiting();
    }
  }

  #startWaiting(): void {
    for (let i = 0; this.#total < this.total; ) {
      const waiter = this.#waiting[i];
      if (waiter === undefined) break;
      const { host, start } = waiter;
      const active = this.#active.get(host) ?? 0;
      if (active >= this.perHost) {
        i++;
        continue;
      }
      this.#waiting.splice(i, 1);
      this.#active.set(host, active + 1);
      this.#total++;
      start();
    }
  }
}
