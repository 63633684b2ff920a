/**
 * Backfill fetch slots (src/backfill/fetch-slots.ts) with tasks that finish when the test says:
 * one subscriber never runs more than its share, and a slot that frees goes to the subscriber
 * running the fewest fetches, so one with many repos queued cannot take every slot back as it
 * frees ahead of one that holds none. A fetch cancelled while it waits (its subscribers left)
 * leaves the queue then, not when a slot frees.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FetchSlots } from '../src/backfill/fetch-slots.ts';
import { fetchesPerSubscriber } from '../src/backfill/snapshots.ts';

/** Queues tasks on `slots`, recording which start, each finishing when `finish(name)` is called. */
function harness(slots: FetchSlots) {
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const running = new Map<number, number>();
  let mostPerAsker = 0;
  const settled: Promise<void>[] = [];
  const ask = (name: string, host: string, asker: number) =>
    settled.push(
      slots.run(host, asker, async () => {
        started.push(name);
        running.set(asker, (running.get(asker) ?? 0) + 1);
        mostPerAsker = Math.max(mostPerAsker, running.get(asker)!);
        await new Promise<void>((resolve) => finishers.set(name, resolve));
        running.set(asker, running.get(asker)! - 1);
      }),
    );
  /** Ends a running task and lets the slots start whoever is next. */
  const finish = async (name: string) => {
    finishers.get(name)!();
    finishers.delete(name);
    await new Promise((resolve) => setImmediate(resolve));
  };
  const finishAll = async () => {
    while (finishers.size > 0) await finish(finishers.keys().next().value!);
    await Promise.all(settled);
  };
  return { started, ask, finish, finishAll, mostPerAsker: () => mostPerAsker };
}

test('a subscriber runs at most its share; a freed slot goes to the subscriber running the fewest, earliest first', async () => {
  const slots = new FetchSlots(4, 2, 4);
  const { started, ask, finish, finishAll, mostPerAsker } = harness(slots);
  for (let i = 0; i < 6; i++) ask(`a${i}`, `host-a${i}`, 1);
  for (let i = 0; i < 6; i++) ask(`b${i}`, `host-b${i}`, 2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(started, ['a0', 'a1', 'b0', 'b1'], 'two each: subscriber 1 queued first, but its share is 2 of the 4 slots');

  ask('c0', 'host-c', 3);
  await finish('a0');
  assert.equal(started.at(-1), 'c0', 'subscriber 3 holds none: it goes ahead of subscriber 1, which queued earlier');

  await finish('b0');
  assert.equal(started.at(-1), 'a2', 'subscribers 1 and 2 hold one each: the earliest waiter');

  for (const name of ['a1', 'b1', 'c0', 'a2']) await finish(name);
  assert.deepEqual(started.slice(6), ['a3', 'b2', 'b3', 'a4'], 'each freed slot to whichever of the two runs fewer');

  await finishAll();
  assert.equal(started.length, 13, 'every task ran');
  assert.equal(mostPerAsker(), 2, 'no subscriber ever ran more than its share');
});

test('one host runs at most perHost fetches whoever asks', async () => {
  const slots = new FetchSlots(1, 2, 4);
  const { started, ask, finish } = harness(slots);
  ask('a0', 'pds', 1);
  ask('b0', 'pds', 2);
  ask('b1', 'other', 2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(started, ['a0', 'b1']);
  await finish('a0');
  assert.deepEqual(started, ['a0', 'b1', 'b0']);
});

test('the share per subscriber is half of --backfill-concurrency, at least one', () => {
  assert.deepEqual([1, 2, 3, 8, 9].map(fetchesPerSubscriber), [1, 1, 1, 4, 4]);
});

test('a fetch cancelled while it waits for a slot leaves the queue at once: it is told so, and its task never runs', async () => {
  const slots = new FetchSlots(1, 1, 1);
  const { started, ask, finish, finishAll } = harness(slots);
  ask('a0', 'pds', 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(started, ['a0'], 'the one slot is taken');

  // A subscriber that asked for many repos and left (or dropped them) before any slot freed.
  const outcomes: string[] = [];
  const abort = new AbortController();
  const cancelled = Array.from({ length: 100 }, (_, i) =>
    slots
      .run(`host-b${i}`, 2, async () => void started.push(`b${i}`), abort.signal)
      .then(
        () => outcomes.push('ran'),
        (err: Error) => outcomes.push(err.message),
      ),
  );
  abort.abort();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(outcomes.length, 100, 'each cancelled waiter is told at once, not when a slot frees (it was held in the queue until then)');
  assert.ok(outcomes.every((outcome) => /cancelled/.test(outcome)), `told it was cancelled: ${outcomes[0]}`);

  const gone = new AbortController();
  gone.abort();
  let toldAtOnce = false;
  await slots.run('host-c', 3, async () => void started.push('c-never'), gone.signal).catch(() => (toldAtOnce = true));
  assert.ok(toldAtOnce, 'a fetch cancelled before it asks is not queued at all');

  ask('d0', 'host-d', 4);
  await finish('a0');
  assert.deepEqual(started, ['a0', 'd0'], 'the freed slot goes to the next waiter still wanted; no cancelled task starts');
  await finishAll();
  await Promise.all(cancelled);
});
