/** ReplayTurns' order within a turn of the event loop: a due live commit goes before the replays' slice, and never stops them. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { test } from 'node:test';
import { cleanup } from '../../test/support/cleanup.ts';
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

test('with a commit due in every turn, each turn runs its commit before any replay step, and the replays still step after it in that turn', async (t) => {
  const defer = cleanup(t);
  const ROUNDS = 30;
  let due = false;
  let stopped = false;
  let steps = 0;
  const turns = new ReplayTurns(() => (steps++, !stopped), 1, () => due);
  turns.queue('an endless replay');
  // Frames arrive on a socket and are read in a turn's poll phase, as the upstream's are: their
  // commit is queued (setImmediate) behind the slice queued at the end of the turn before.
  const server = createServer();
  defer(() => new Promise((resolve) => server.close(resolve)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const writer = connect((server.address() as AddressInfo).port, '127.0.0.1');
  defer(() => writer.destroy());
  const [reader] = (await accepted) as [Socket];
  defer(() => reader.destroy());
  /** Replay steps between each read and its commit, and between each commit and the next read. */
  const beforeCommit: number[] = [];
  const afterCommit: number[] = [];
  let readAt = 0;
  let committedAt: number | undefined;
  const done = new Promise<void>((resolve) => {
    reader.on('data', () => {
      if (committedAt !== undefined) afterCommit.push(steps - committedAt);
      readAt = steps;
      due = true;
      setImmediate(() => {
        due = false;
        beforeCommit.push(steps - readAt);
        committedAt = steps;
        // As the hub does once a commit's live sends are done.
        turns.liveDone();
        // The next frame arrives as this turn ends: it is read in the next turn's poll phase.
        if (beforeCommit.length < ROUNDS) writer.write('x');
        else resolve();
      });
    });
  });
  writer.write('x');
  await done;
  stopped = true;
  await turnsLater(3);
  assert.deepEqual(beforeCommit, Array(ROUNDS).fill(0), "no replay step between a turn's read and its commit");
  assert.ok(afterCommit.every((count) => count > 0), `the replays stepped after every commit: ${afterCommit}`);
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

test('the slice is shared: endless replays step for about one slice per turn in all, not one each, round robin, and other work runs every turn', async () => {
  const STEP_MS = 1;
  const SLICE_MS = 3;
  const replays = Array.from({ length: 20 }, (_, i) => i);
  const stepsOf = new Map<number, number>();
  const turnsLog: number[] = [];
  let stepsThisTurn = 0;
  let stopped = false;
  const turns = new ReplayTurns(
    (replay: number) => {
      const until = performance.now() + STEP_MS;
      while (performance.now() < until); // a step that costs a millisecond of the main thread
      stepsOf.set(replay, (stepsOf.get(replay) ?? 0) + 1);
      stepsThisTurn++;
      return !stopped; // never done, until the test ends
    },
    SLICE_MS,
    () => false,
  );
  for (const replay of replays) turns.queue(replay);
  // Other work (a live send) in each of 40 turns: each finds at most one slice run before it.
  for (let turn = 0; turn < 40; turn++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    turnsLog.push(stepsThisTurn);
    stepsThisTurn = 0;
  }
  const most = Math.max(...turnsLog);
  // Each step takes at least STEP_MS, and the slice stops stepping once SLICE_MS passed: at most SLICE_MS / STEP_MS + 1 steps.
  assert.ok(most <= SLICE_MS / STEP_MS + 1, `at most one slice of steps between two turns of other work, not one per replay: ${turnsLog}`);
  assert.ok(turnsLog.filter((steps) => steps > 0).length >= 30, `the replays ran in most turns: ${turnsLog}`);
  // Round robin: every replay stepped, and none more than a turn's worth ahead of another.
  assert.equal(stepsOf.size, replays.length, 'every replay got steps');
  const counts = [...stepsOf.values()];
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `turns are taken in order: ${counts}`);
  stopped = true;
  await turnsLater(3);
});
