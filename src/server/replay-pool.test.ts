/** The replay workers' default: none on two cores or fewer (measured worse there), else a worker per core but the main thread's. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultReplayWorkers } from './replay-pool.ts';

test('--replay-workers defaults to 0 on one or two cores, and to cores − 1 on more', () => {
  assert.deepEqual([1, 2, 3, 4, 16].map((cores) => defaultReplayWorkers(cores)), [0, 0, 2, 3, 15]);
});
