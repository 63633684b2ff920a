import { statSync, type Stats } from 'node:fs';
import { join } from 'node:path';

const CHECK_INTERVAL_MS = 1_000;

/**
 * Notices the data dir deleted under a running gateway (an `rm -rf`, a volume unmounted), or its
 * buffer file replaced. LMDB goes on writing into the file it opened after an unlink, without an
 * error, so nothing else would: the node would serve from a buffer the next start cannot find, and
 * a second contrail could lock a data dir made again at the same path. Every second the buffer
 * file's path is compared with the file that was opened (device and inode).
 */
export class DataDirWatch {
  readonly #timer: NodeJS.Timeout;
  #onGone: (err: Error) => void = () => {};
  /** Resolves once the buffer file at the data dir's path is not the one opened. */
  readonly gone = new Promise<Error>((resolve) => (this.#onGone = resolve));

  /** Starts watching the buffer file opened in `dataDir` (call it after the store opened). */
  constructor(dataDir: string) {
    const path = join(dataDir, 'data.mdb');
    const opened = statSync(path);
    this.#timer = setInterval(() => {
      const why = changed(opened, path);
      if (why === undefined) return;
      clearInterval(this.#timer);
      this.#onGone(new Error(`the data dir ${dataDir} is gone (deleted while contrail ran?): ${why}; the buffer can no longer be kept where the next start finds it, so contrail stops. Start it again on a data dir that stays`));
    }, CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Why `path` is no longer the file `opened` was, or undefined while it is. */
function changed(opened: Stats, path: string): string | undefined {
  let now: Stats;
  try {
    now = statSync(path);
  } catch (err) {
    return `${path} cannot be read (${(err as Error).message})`;
  }
  return now.dev === opened.dev && now.ino === opened.ino ? undefined : `${path} is another file than the one opened`;
}
