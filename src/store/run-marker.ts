import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Without fsync, an LMDB commit survives a killed process (it is in the OS page cache) but not
 * a machine crash, which can also leave the file torn. A marker written at start and removed at
 * a clean stop tells the next start what happened: a marker from the same boot means only the
 * process died (the buffer is whole); a marker from an earlier boot of a run without fsync
 * means the buffer may be torn, so it is set aside (kept for the operator) and a new one begins.
 */
const MARKER = 'contrail-run.json';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';

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

export function markRunning(dataDir: string, fsync: boolean): void {
  const marker: RunMarker = { bootId: currentBootId(), fsync, pid: process.pid, startedAt: new Date().toISOString() };
  writeFileSync(join(dataDir, MARKER), JSON.stringify(marker) + '\n');
}

export function markStopped(dataDir: string): void {
  rmSync(join(dataDir, MARKER), { force: true });
}

function currentBootId(): string | null {
  try {
    return readFileSync(BOOT_ID, 'utf8').trim();
  } catch {
    return null; // not Linux: a reboot cannot be told from a process crash
  }
}
