/**
 * `npm run bench`: every benchmark, each in a fresh process (so one's heap does not slow the
 * next), each printing its table beside its peers from the same run. Run one alone with
 * `npm run bench -- <name>` or `npx tsx bench/<name>.ts`. Numbers are medians of several
 * runs; the machine should be otherwise idle.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const benches = ['ingest', 'verify', 'store', 'fanout', 'startup', 'cluster'];
const only = process.argv[2];
let failed = false;
for (const name of benches) {
  if (only && name !== only) continue;
  // The same V8 flags as `npm start`, so the numbers are the gateway's.
  const result = spawnSync(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, import.meta.url))], {
    stdio: 'inherit',
  });
  failed ||= result.status !== 0;
}
process.exit(failed ? 1 : 0);
