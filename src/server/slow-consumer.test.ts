import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FELL_BEHIND, judgeDrain } from './slow-consumer.ts';

const WINDOW_MS = 60_000;
const start = { atMs: 1_000, position: 100_000_000, tip: 200_000_000 };

test('inside the window nothing is decided, however slow', () => {
  const now = { nowMs: 1_000 + WINDOW_MS - 1, position: start.position, tip: start.tip + 50_000_000, trimmedUpTo: 0 };
  assert.deepEqual(judgeDrain(start, now, WINDOW_MS), { kind: 'keep' });
});

test('at the window end: under half the stream\'s advance drops, half or more starts a new window', () => {
  const at = 1_000 + WINDOW_MS;
  const streamAdvance = 40_000_000;
  const slow = judgeDrain(start, { nowMs: at, position: start.position + streamAdvance / 2 - 1, tip: start.tip + streamAdvance, trimmedUpTo: 0 }, WINDOW_MS);
  assert.equal(slow.kind, 'drop');
  assert.match((slow as { message: string }).message, /^read less than half as fast as the stream for 60s and is 120s behind$/);
  const keeping = judgeDrain(start, { nowMs: at, position: start.position + streamAdvance / 2, tip: start.tip + streamAdvance, trimmedUpTo: 0 }, WINDOW_MS);
  assert.deepEqual(keeping, { kind: 'new_window' });
});

test('a quiet stream never makes a subscriber slow', () => {
  assert.deepEqual(judgeDrain(start, { nowMs: 10 * WINDOW_MS, position: start.position, tip: start.tip, trimmedUpTo: 0 }, WINDOW_MS), { kind: 'new_window' });
});

test('a position below the retention floor is dropped at once: its events are gone', () => {
  const now = { nowMs: start.atMs, position: start.position, tip: start.tip, trimmedUpTo: start.position + 1 };
  assert.deepEqual(judgeDrain(start, now, WINDOW_MS), { kind: 'drop', message: FELL_BEHIND });
});
