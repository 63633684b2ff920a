import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { openMeta } from './environment.ts';
import { META } from './stored-state.ts';
import { assertLmdbFile } from './lmdb-file.ts';

/**
 * Without fsync, an LMDB commit survives a killed process (it is in the OS page cache) but not
 * a machine crash, which can also leave the file torn. A marker written at start and removed at
 * a clean stop tells the next start what happened: a marker from the same boot means only the
 * process died (the buffer is whole); a marker from an earlier boot of a run without fsync
 * means the buffer may be torn, so it is set aside (kept for the operator) and a new one begins.
 * Clients may hold seqs and time_us of commits the crash lost, so the marker also holds a ceiling
 * for each that none given out is above (SEQ_LEASE, TIME_US_LEASE), and the new buffer gives its
 * events seqs and time_us above them: its clock starts above the time_us ceiling even when the wall
 * clock went back across the reboot. A marker without them (one that cannot be read, which sets
 * the buffer aside too, since nothing says the machine did not crash; or an older contrail's)
 * has them taken from the buffer set aside (ceilingsOf), so the new buffer never gives a seq again.
 */
const MARKER = 'contrail-run.json';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';
/** Without fsync, how often the buffer is synced to disk in the background. */
const SYNC_INTERVAL_MS = 1_000;
/**
 * Seqs a run without fsync may give out above the newest one when it raises its marker's ceiling
 * (once the newest comes within half of it): a marker write, flushed to disk, per million events
 * (one every ~8 minutes at 2,000 events/s).
 */
const SEQ_LEASE = 1_000_000;
/**
 * How far above the newest time_us a run without fsync sets its marker's time_us ceiling, raised
 * again (a flushed marker write, in the background) once the newest comes within half of it: one
 * write every ~30 s.
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
  /** Without fsync: no seq above this was given out (markers of contrails before it lack it: then the buffer's own is read, ceilingsOf). */
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
  const ceilings = marker.seqCeiling !== undefined && marker.timeUsCeiling !== undefined ? marker : ceilingsOf(setAside);
  return {
    unclean: true,
    setAside,
    ...(ceilings ? { seqCeiling: ceilings.seqCeiling, timeUsCeiling: ceilings.timeUsCeiling } : {}),
  };
}

/**
 * The ceilings of a buffer set aside whose marker does not hold them (it cannot be read, or a
 * contrail from before them wrote it): the newest seq and time_us the buffer has on disk (or the
 * floors it numbered above), each plus its lease — the run gave out at most the events of one
 * background sync more than the disk holds, far fewer than a lease. Undefined if the buffer
 * cannot be read either.
 */
function ceilingsOf(file: string): { seqCeiling: number; timeUsCeiling: number } | undefined {
  try {
    assertLmdbFile(file);
    const root = openLmdb({ path: file, noSubdir: true, readOnly: true, maxDbs: 16 });
    try {
      const meta = openMeta(root);
      const newest = (...keys: string[]) => Math.max(0, ...keys.map((key) => (meta.get(key) as number | undefined) ?? 0));
      return { seqCeiling: newest(META.lastSeq, META.seqFloor) + SEQ_LEASE, timeUsCeiling: newest(META.lastTimeUs, META.timeUsFloor) + TIME_US_LEASE };
    } finally {
      void root.close();
      rmSync(`${file}-lock`, { force: true });
    }
  } catch {
    return undefined;
  }
}

/**
 * A writable buffer's run, from open to a clean stop: the marker says it is running, and
 * without fsync the buffer is synced to disk every second in the background and the marker
 * holds the seq and time_us ceilings (reserve).
 */
export class Run {
  readonly #syncTimer: NodeJS.Timeout | undefined;
  /** What the marker should hold: its ceilings are raised here first. */
  #marker: RunMarker;
  /** The ceilings on disk, flushed: no seq or time_us above them may be given out. */
  #durable: { seqCeiling: number; timeUsCeiling: number } | undefined;
  /** A raise written in the background (one at a time), and the number of the newest write begun. */
  #raising: Promise<void> | undefined;
  #writes = 0;

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
    this.#durable = { seqCeiling: issued.seq, timeUsCeiling: issued.timeUs };
    this.#syncTimer = setInterval(() => syncToDisk(root, () => {}), SYNC_INTERVAL_MS);
    this.#syncTimer.unref();
  }

  /**
   * Before seqs up to `seq` and time_us up to `timeUs` are given out: without fsync, the marker on
   * disk must hold ceilings at or above them, so that after a machine crash the next buffer gives
   * its events seqs and time_us above any a client may hold. A ceiling is raised (seq by SEQ_LEASE,
   * time_us by TIME_US_LEASE) once the newest comes within half a lease of it, written and flushed
   * in the background: a flushed write takes 8–20 ms on a VM's disk, which the thread that ingests
   * and sends live events must not wait for. Only a write still unfinished when the newest reaches
   * the ceiling on disk (half a lease later) is made at once, before this returns.
   */
  reserve(seq: number, timeUs: number): void {
    const durable = this.#durable;
    const { seqCeiling, timeUsCeiling } = this.#marker;
    if (durable === undefined || seqCeiling === undefined || timeUsCeiling === undefined) return;
    const raiseSeq = seq > seqCeiling - SEQ_LEASE / 2;
    const raiseTimeUs = timeUs > timeUsCeiling - TIME_US_LEASE / 2;
    if (raiseSeq || raiseTimeUs) {
      this.#marker = {
        ...this.#marker,
        ...(raiseSeq ? { seqCeiling: seq + SEQ_LEASE } : {}),
        ...(raiseTimeUs ? { timeUsCeiling: timeUs + TIME_US_LEASE } : {}),
      };
    }
    if (seq > durable.seqCeiling || timeUs > durable.timeUsCeiling) {
      this.#writes++;
      writeMarker(this.dataDir, this.#marker);
      this.#flushed(this.#marker);
    } else if ((raiseSeq || raiseTimeUs) && this.#raising === undefined) {
      this.#raising = this.#raiseInBackground().finally(() => (this.#raising = undefined));
    }
  }

  /**
   * Writes the marker to a file of its own, flushes it, and renames it over the marker — unless a
   * newer marker was written meanwhile (by reserve, at once), which a rename would replace with
   * lower ceilings. Its ceilings count once the rename is flushed too.
   */
  async #raiseInBackground(): Promise<void> {
    const marker = this.#marker;
    const write = ++this.#writes;
    const path = join(this.dataDir, MARKER);
    const tmp = `${path}.${write}.tmp`;
    try {
      const file = await open(tmp, 'w');
      try {
        await file.writeFile(JSON.stringify(marker) + '\n');
        await file.sync();
      } finally {
        await file.close();
      }
      if (write !== this.#writes) return await rm(tmp, { force: true });
      renameSync(tmp, path);
      const dir = await open(this.dataDir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      this.#flushed(marker);
    } catch {
      // Not raised: reserve writes at once when the newest reaches the ceiling on disk, and says why if it cannot.
      await rm(tmp, { force: true }).catch(() => {});
    }
  }

  #flushed(marker: RunMarker): void {
    const durable = this.#durable!;
    durable.seqCeiling = Math.max(durable.seqCeiling, marker.seqCeiling!);
    durable.timeUsCeiling = Math.max(durable.timeUsCeiling, marker.timeUsCeiling!);
  }

  /** Syncs the buffer to disk, closes it with `close`, then marks the run stopped cleanly (after any raise still being written). */
  async end(close: () => Promise<void>): Promise<void> {
    clearInterval(this.#syncTimer);
    await new Promise<void>((resolve) => syncToDisk(this.root, () => resolve()));
    await close();
    await this.#raising;
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
