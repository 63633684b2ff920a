import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { SeqsBehind } from './seqs-behind.ts';

// afterMs 0: the first frame at or below the highest seq read is a run that has lasted long enough.
const watch = () => new SeqsBehind(pino({ level: 'silent' }), 0);

test('a frame at or below the highest seq read on the connection is reported, naming that seq, until one above it comes', () => {
  const seqs = watch();
  seqs.connecting(100);
  for (const seq of [101, 102, 900_000]) seqs.read(seq);
  assert.equal(seqs.reason, undefined, 'rising seqs');
  seqs.read(103);
  assert.equal(seqs.reason, 'every upstream frame since seq 103 is at or below seq 900000, already read: none is stored');
  seqs.read(104);
  assert.match(seqs.reason!, /since seq 103 /, 'the run is named by its first frame');
  seqs.read(900_001);
  assert.equal(seqs.reason, undefined);
});

test('a relay that sends at or below the cursor it was dialled with is reported', () => {
  const seqs = watch();
  seqs.connecting(100);
  seqs.read(40);
  assert.match(seqs.reason!, /at or below seq 100,/);
});

test('a reconnect that reads again below the highest seq read (messages --verify still holds) is no jump; FutureCursor makes every seq new', () => {
  const seqs = watch();
  seqs.connecting(undefined);
  for (const seq of [1, 2, 3, 50]) seqs.read(seq);
  seqs.read(4);
  assert.notEqual(seqs.reason, undefined);
  // Dialled again after seq 2, the oldest held message being seq 3: 3, 4, … rise from there.
  seqs.connecting(2);
  assert.equal(seqs.reason, undefined, 'the last connection\'s run is forgotten');
  for (const seq of [3, 4, 50, 51]) seqs.read(seq);
  assert.equal(seqs.reason, undefined);

  seqs.restarted();
  seqs.read(1);
  assert.equal(seqs.reason, undefined);
});
