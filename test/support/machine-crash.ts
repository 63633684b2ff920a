/**
 * A run without --fsync that a machine crash ended, as the next start finds it: the buffer as the
 * run left it, and the run's marker (store/run-marker.ts) still there, naming an earlier boot.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '../../src/events/index.ts';
import { EventStore } from '../../src/store/index.ts';

export const RUN_MARKER = 'contrail-run.json';

/** This boot's id, which the marker records; null on an OS without one (the machine-crash tests are skipped there). */
export function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** A run without fsync commits `entries` to a new buffer in `dataDir`, then the machine crashes. */
export async function crashedRun(dataDir: string, entries: Entry[]): Promise<void> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false });
  await store.commit({ entries, revs: new Map() });
  // A clean close removes the marker: it is put back as the crash left it.
  const marker = readFileSync(join(dataDir, RUN_MARKER), 'utf8');
  await store.close();
  markCrashed(dataDir, marker);
}

/** Writes `marker` (a run's, read while it ran) back into `dataDir` as from an earlier boot: the run ended in a machine crash. */
export function markCrashed(dataDir: string, marker: string): void {
  writeFileSync(join(dataDir, RUN_MARKER), JSON.stringify({ ...JSON.parse(marker), bootId: 'an-earlier-boot' }));
}
