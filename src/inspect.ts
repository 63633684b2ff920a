import { statSync } from 'node:fs';
import { join } from 'node:path';
import { EventStore } from './store/index.ts';
import { redactUrl } from './upstream/index.ts';

/** `contrail inspect`: what an operator wants to see of a buffer before and after a restart. */
export async function inspect(dataDir: string): Promise<void> {
  const file = join(dataDir, 'data.mdb');
  let size: number | undefined;
  try {
    size = statSync(file).size;
  } catch {
    size = undefined;
  }
  if (size === undefined || size === 0) {
    // An empty one is a buffer LMDB never initialized; opened read-only, LMDB cannot, and would crash on it.
    process.stderr.write(`contrail: no event buffer in ${dataDir} (${size === undefined ? `expected ${file}` : `${file} is empty`})\n`);
    process.exit(2);
  }
  const store = new EventStore({ dataDir, hotLogBytes: 0, readOnly: true });
  const span = store.span();
  const cursor = store.upstreamCursor;
  const show = (timeUs: number | undefined) => (timeUs === undefined ? '-' : `${new Date(timeUs / 1000).toISOString()}  (time_us ${timeUs})`);
  const lines = [
    `data dir        ${dataDir}`,
    `oldest event    ${show(span.oldestTimeUs)}`,
    `newest event    ${show(span.newestTimeUs)}`,
    `events          ${span.eventCount.toLocaleString('en-US')}`,
    `event pages     ${formatBytes(span.bytes)}`,
    `file on disk    ${formatBytes(statSync(join(dataDir, 'data.mdb')).size)}`,
    `last time_us    ${store.lastTimeUs}`,
    `upstream cursor ${cursor ? `seq ${cursor.seq} from ${redactUrl(cursor.url)}` : '- (none saved: starts live)'}`,
    `trimmed up to   ${store.trimmedUpTo > 0 ? show(store.trimmedUpTo) : '- (nothing trimmed yet)'}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  await store.close();
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]} (${bytes} bytes)`;
}
