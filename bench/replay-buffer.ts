/** The replay benchmarks' buffer: events with the network's mix, written through the EventStore once, optionally kept for later runs. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DICTIONARY } from '../src/config.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from '../test/support/gateway.ts';
import { dayEvents } from './day-events.ts';

/**
 * A buffer of `events` events ending a minute before now at `eventsPerSecond`, so a live stream's
 * time_us (the wall clock) continues above it. With `keepIn`, it is written there once
 * (per event count) and reused on later runs; otherwise in a temp dir removed by `remove`.
 */
export async function replayBuffer(events: number, eventsPerSecond: number, keepIn: string | undefined, progress: (text: string) => void): Promise<{ path: string; remove(): void }> {
  const dir = keepIn ? { path: join(keepIn, String(events)), remove: () => {} } : tempDir('contrail-replay-buffer-');
  const complete = `${dir.path}.complete`;
  if (keepIn && existsSync(complete)) {
    progress(`reusing the buffer in ${dir.path}`);
    return dir;
  }
  progress(`writing a buffer of ${events.toLocaleString('en-US')} events`);
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, dictionary: readFileSync(DEFAULT_DICTIONARY) });
  const source = dayEvents({ repos: 200_000, seed: 11, firstTimeUs: (Date.now() - (events / eventsPerSecond) * 1000 - 60_000) * 1000, eventsPerSecond });
  for (let written = 0; written < events; written += 1_000) await store.commit({ entries: source.next(Math.min(1_000, events - written)), revs: new Map() });
  await store.close();
  if (keepIn) writeFileSync(complete, '');
  return dir;
}
