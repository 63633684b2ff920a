import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';

/**
 * Without fsync, an LMDB commit survives a killed process (it is in the OS page cache) but not
 * a machine crash, which can also leave the file torn. A marker written at start and removed at
 * a clean stop tells the next start what happened: a marker from the same boot means only the
 * process died (the buffer is whole); a marker from an earlier boot of a run without fsync
 * means the buffer may be torn, so it is set aside (kept for the operator) and a new one begins.
 * Clients may hold seqs and time_us of commits the crash lost, so the marker also holds a ceiling
 * for each that none given out is above (SEQ_LEASE, TIME_US_LEASE), and the new buffer gives its
 * events seqs and time_us above them: its clock starts above the time_us ceiling even when the wall
 * clock went back across the reboot.
 */
const MARKER = 'contrail-run.json';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';
/** Without fsync, how often the buffer is synced to disk in the background. */
const SYNC_INTERVAL_MS = 1_000;
/**
 * Seqs a run without fsync may give out above the newest one when it raises its marker's ceiling:
 * a marker write, flushed to disk, per million events (one every ~8 minutes at 2,000 events/s).
 */
const SEQ_LEASE = 1_000_000;
/**
 * How far above the newest time_us a run without fsync sets its marker's time_us ceiling, raised
 * again (a flushed marker write) once the newest comes within half of it: one write every ~30 s.
 * After a machine crash the new buffer's clock starts above the ceiling, so its time_us run ahead
 * of the wall clock by up to this much (less however long the reboot took; plus however far the
 * clock went back across it), each event 1 µs after the one before, until the wall clock catches
 * up: at most a minute. A machine takes about that long to reboot, so with a clock that did not go
 * back the new buffer's time_us rarely run ahead of it at all. A longer lease would keep time_us
 * ahead of the wall clock for longer after a crash (a cursor taken from the wall clock, "the last
 * five minutes", would get less than it asked for); a shorter one costs more flushed writes.
 */
const TIME_US_LEASE = 60_000_000;

interface RunMarker {
  bootId: string | null;
  fsync: boolean;
  pid: number;
  startedAt: string;
  /** Without fsync: no seq above this was given out (markers of contrails before it lack it). */
  seqCeiling?: number;
  /** Without fsync: no time_us above this was given out (markers of contrails before it lack it). */
  timeUsCeiling?: number;
}

export interface PreviousRun {
  /** The last run did not stop cleanly. */
  unclean: boolean;
  /** Where a possibly torn buffer was moved, if it was. */
  setAside?: string;
  /** With setAside: the buffer set aside gave out no seq above this; the new one numbers its events above it. */
  seqCeiling?: number;
  /** With setAside: the buffer set aside gave out no time_us above this; the new one's clock starts above it. */
  timeUsCeiling?: number;
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
  return {
    unclean: true,
    setAside,
    ...(marker.seqCeiling !== undefined ? { seqCeiling: marker.seqCeiling } : {}),
    ...(marker.timeUsCeiling !== undefined ? { timeUsCeiling: marker.timeUsCeiling } : {}),
  };
}

/**
 * A writable buffer's run, from open to a clean stop: the marker says it is running, and
 * without fsync the buffer is synced to disk every second in the background and the marker
 * holds the seq and time_us ceilings (reserve).
 */
export class Run {
  readonly #syncTimer: NodeJS.Timeout | undefined;
  #marker: RunMarker;

  /** @param issued the newest seq and time_us given out so far (or the floors the buffer gives its events above) */
  constructor(
    private readonly dataDir: string,
    fsync: boolean,
    private readonly root: RootDatabase,
    issued: { seq: number; timeUs: number },
  ) {
    this.#marker = {
      bootId: currentBootId(),
      fsync,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      ...(fsync ? {} : { seqCeiling: issued.seq, timeUsCeiling: issued.timeUs }),
    };
    writeMarker(dataDir, this.#marker);
    if (fsync) return;
    this.#syncTimer = setInterval(() => syncToDisk(root, () => {}), SYNC_INTERVAL_MS);
    this.#syncTimer.unref();
  }

  /**
   * Before seqs up to `seq` and time_us up to `timeUs` are given out: without fsync, the marker on
   * disk must hold ceilings at or above them (raised by SEQ_LEASE, and by TIME_US_LEASE once within
   * half of it, flushed before this returns), so that after a machine crash the next buffer gives
   * its events seqs and time_us above any a client may hold.
   */
  reserve(seq: number, timeUs: number): void {
    const { seqCeiling, timeUsCeiling } = this.#marker;
    if (seqCeiling === undefined || timeUsCeiling === undefined) return;
    const raiseSeq = seq > seqCeiling;
    const raiseTimeUs = timeUs > timeUsCeiling - TIME_US_LEASE / 2;
    if (!raiseSeq && !raiseTimeUs) return;
    this.#marker = {
      ...this.#marker,
      ...(raiseSeq ? { seqCeiling: seq + SEQ_LEASE } : {}),
      ...(raiseTimeUs ? { timeUsCeiling: timeUs + TIME_US_LEASE } : {}),
    };
    writeMarker(this.dataDir, this.#marker);
  }

  /** Syncs the buffer to disk, closes it with `close`, then marks the run stopped cleanly. */
  async end(close: () => Promise<void>): Promise<void> {
    clearInterval(this.#syncTimer);
    await new Promise<void>((resolve) => syncToDisk(this.root, () => resolve()));
    await close();
    markStopped(this.dataDir);
  }
}

/** Writes the marker whole and flushed to disk (a machine crash leaves the old one or this one), before it counts. */
function writeMarker(dataDir: string, marker: RunMarker): void {
  const path = join(dataDir, MARKER);
  const file = openSync(`${path}.tmp`, 'w');
  try {
    writeSync(file, JSON.stringify(marker) + '\n');
    fsyncSync(file);
  } finally {
    closeSync(file);
  }
  renameSync(`${path}.tmp`, path);
  const dir = openSync(dataDir, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
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
