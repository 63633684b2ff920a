/**
 * `npm run bench`: every benchmark, each printing its table beside its peers from the same run.
 * Run one alone with `npx tsx bench/<name>.ts`. Numbers are medians of several runs; the
 * machine should be otherwise idle.
 */
import { printTable, type Row } from './table.ts';

const benches: Array<[string, string]> = [
  ['ingest: upstream frames → JSON events, one core', './ingest.ts'],
  ['store: LMDB buffer writes and replay reads, one core', './store.ts'],
  ['fanout: delivery to 1,000 clients, latency, dictionary ratio', './fanout.ts'],
];

const only = process.argv[2];
for (const [title, path] of benches) {
  if (only && !path.includes(only)) continue;
  const { run } = (await import(path)) as { run: () => Promise<Row[]> };
  printTable(title, await run());
}
