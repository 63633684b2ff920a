/**
 * Child process for the stepped-seal crash test: commits SEAL_CRASH_EVENTS events to the store in
 * argv[2] (blocks of SEAL_CRASH_BLOCK), lets the seal run step by step, and kills itself
 * (SIGKILL, no clean close) at the first turn where the per-DID index holds postings of a block
 * the directory does not list yet.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { EventStore } from '../../src/store/index.ts';
import { openEnvironment, openTables } from '../../src/store/environment.ts';
import { sealCrashEvents, SEAL_CRASH_BLOCK } from './seal-crash-events.ts';

const store = new EventStore({ dataDir: process.argv[2] ?? '', hotLogBytes: 0, blockEvents: SEAL_CRASH_BLOCK, fsync: false });
// The environment the store opened (lmdb-js shares it within a process), read between the seal's steps.
const root = openEnvironment(store.location);
const tables = openTables(root);
await store.commit({ entries: sealCrashEvents(), revs: new Map() });
for (let turn = 0; turn < 1_000; turn++) {
  await nextTurn();
  root.resetReadTxn(); // lmdb-js would renew its read snapshot only on a later turn
  if (tables.byDid.getCount() > 0 && tables.directory.getCount() === 0) process.kill(process.pid, 'SIGKILL');
}
process.stdout.write('the seal never stood between its postings and its block\n');
process.exit(1);
