import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from './backoff.ts';

test('full jitter: a uniform draw below a ceiling that doubles per failure up to the cap', () => {
  const policy = { baseMs: 1_000, maxMs: 30_000 };
  const top = () => 0.999_999;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6].map((failures) => backoffDelay(failures, { ...policy, random: top })),
    [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
  );
  assert.equal(backoffDelay(3, { ...policy, random: () => 0 }), 0);
  assert.equal(backoffDelay(3, { ...policy, random: () => 0.5 }), 4_000);
  // Never above the cap, however many failures (2^n stays finite).
  assert.equal(backoffDelay(10_000, { ...policy, random: top }), 30_000);
});

test('without jitter the ceiling itself, with the doubling stopped at maxDoublings (ingest retries)', () => {
  const policy = { baseMs: 10, maxMs: 30_000, maxDoublings: 5 };
  assert.deepEqual(
    [0, 1, 5, 6, 50].map((failures) => backoffDelay(failures, policy)),
    [10, 20, 320, 320, 320],
  );
});
