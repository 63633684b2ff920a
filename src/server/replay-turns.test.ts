/** ReplayTurns' order within a turn of the event loop: a due live commit goes before the replays' slice, and never stops them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplayTurns } from './replay-turns.ts';

/** Resolves a few turns of the event loop later (each setImmediate queued in a turn runs in the next). */
async function turnsLater(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

test('a commit due in the same turn runs before the replay slice queued ahead of it', async () => {
  const order: string[] = [];
  let due = false;
  const turns = new ReplayTurns(() => (order.push('replay step'), false), 3, () => due);
  turns.queue('replay');
  // Queued after the slice, as the ingester's commit is when frames arrive during a slice.
  due = true;
  setImmediate(() => {
    order.push('commit');
    due = false;
  });
  await turnsLater(3);
  assert.deepEqual(order, ['commit', 'replay step']);
});

test('without a commit due the slice runs in its own turn', async () => {
  const order: string[] = [];
  const turns = new ReplayTurns(() => (order.push('replay step'), false), 3, () => false);
  turns.queue('replay');
  setImmediate(() => order.push('other work'));
  await turnsLater(3);
  assert.deepEqual(order, ['replay step', 'other work']);
});

test('a commit that stays due (one failing and retried) slows replays by a turn each, never stops them', async () => {
  let steps = 0;
  const turns = new ReplayTurns(() => ++steps < 20, 3, () => true);
  turns.queue('replay');
  await turnsLater(60);
  assert.equal(steps, 20);
});
