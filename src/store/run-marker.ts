import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';

/**
 * Without fsync, an LMDB commit survives a killed process (it is in the OS page cache) but not
 * a machine crash, which can also leave the file torn. A marker written at start and removed at
 * a clean stop tells the next start what happened: a marker from the same boot means only the
 * process died (the buffer is whole); a marker from an earlier boot of a run without fsync
 * means the buffer may be torn, so it is set aside (kept for the operator) and a new one begins.
 */
const MARKER = 'contrail-run.json';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';
/** Without fsync, how often the buffer is synced to disk in the background. */
const SYNC_INTERVAL_MS = 1_000;

interface RunMarker {
  bootId: string | null;
  fsync: boolean;
  pid: number;
  startedAt: string;
}

export interface PreviousRun {
  /** The last run did not stop cleanly. */
  unclean: boolean;
  /** Where a possibly torn buffer was moved, if it was. */
  setAside?: string;
}

export function checkPreviousRun(dataDir: string): PreviousRun {
  const path = join(dataDir, MARKER);
  if (!existsSync(path)) return { unclean: false };
  let marker: RunMarker;
  try {
    marker = JSON.parse(readFileSync(path, 'utf8')) as RunMarker;
  } catch {
    marker = { bootId: null, fsync: false, pid: 0, startedAt: '' };
  }
  const bootId = currentBootId();
  const survivedReboot = marker.fsync || (bootId !== null && marker.bootId === bootId);
  if (survivedReboot || !existsSync(join(dataDir, 'data.mdb'))) return { unclean: true };
  const setAside = join(dataDir, `data.mdb.unsynced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  renameSync(join(dataDir, 'data.mdb'), setAside);
  rmSync(join(dataDir, 'lock.mdb'), { force: true });
  return { unclean: true, setAside };
}

/**
 * A writable buffer's run, from open to a clean stop: the marker says it is running, and
 * without fsync the buffer is synced to disk every second in the background.
 */
export class Run {
  readonly #syncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dataDir: string,
    fsync: boolean,
    private readonly root: RootDatabase,
  ) {
    markRunning(dataDir, fsync);
    if (fsync) return;
    this.#syncTimer = setInterval(() => syncToDisk(root, () => {}), SYNC_INTERVAL_MS);
    this.#syncTimer.unref();
  }

  /** Syncs the buffer to disk, closes it with `close`, then marks the run stopped cleanly. */
  async end(close: () => Promise<void>): Promise<void> {
    clearInterval(this.#syncTimer);
    await new Promise<void>((resolve) => syncToDisk(this.root, () => resolve()));
    await close();
    markStopped(this.dataDir);
  }
}

function markRunning(dataDir: string, fsync: boolean): void {
  const marker: RunMarker = { bootId: currentBootId(), fsync, pid: process.pid, startedAt: new Date().toISOString() };
  writeFileSync(join(dataDir, MARKER), JSON.stringify(marker) + '\n');
}

function markStopped(dataDir: string): void {
  rmSync(join(dataDir, MARKER), { force: true });
}

function currentBootId(): string | null {
  try {
    return readFileSync(BOOT_ID, 'utf8').trim();
  } catch {
    return null; // not Linux: a reboot cannot be told from a process crash
  }
}

/** mdb_env_sync, which lmdb-js has but does not declare in its typings. */
function syncToDisk(root: RootDatabase, done: (error?: Error) => void): void {
  (root as unknown as { sync(callback: (error?: Error) => void): void }).sync(done);
}
