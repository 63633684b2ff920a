/**
 * HotLog against a model: whatever is appended and trimmed, it holds exactly the newest events
 * that fit its byte budget, as one contiguous suffix of the stream above its floor.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Entry } from '../events/index.ts';
import { HotLog } from './hot-log.ts';

function entry(timeUs: number, bytes: number): Entry {
  return { timeUs, did: 'did:plc:alice', kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.alloc(bytes, 0x20) };
}

function scanned(log: HotLog, position: number, max = Infinity): number[] {
  const seen: number[] = [];
  log.scan(position, (e) => {
    seen.push(e.timeUs);
    return seen.length < max;
  });
  return seen;
}

test('an empty log starts at the floor it is given and covers everything from there', () => {
  const log = new HotLog(1000, 50);
  assert.equal(log.floor, 50);
  assert.equal(log.newest, 50);
  assert.equal(log.bytes, 0);
  assert.equal(log.covers(50), true);
  assert.equal(log.covers(49), false);
  assert.deepEqual(scanned(log, 50), []);
});

test('scan visits the events after a position, in order, and stops when told', () => {
  const log = new HotLog(1000, 0);
  log.append([10, 20, 30, 40].map((t) => entry(t, 5)));
  assert.equal(log.newest, 40);
  assert.equal(log.bytes, 20);
  assert.deepEqual(scanned(log, 0), [10, 20, 30, 40]);
  assert.deepEqual(scanned(log, 20), [30, 40]);
  assert.deepEqual(scanned(log, 25), [30, 40]);
  assert.deepEqual(scanned(log, 40), []);
  assert.deepEqual(scanned(log, 0, 2), [10, 20]);
});

test('past its budget it evicts the oldest events and raises the floor to the newest evicted', () => {
  const log = new HotLog(25, 0);
  log.append([10, 20, 30].map((t) => entry(t, 10)));
  assert.equal(log.floor, 10);
  assert.equal(log.bytes, 20);
  assert.equal(log.covers(5), false);
  assert.deepEqual(scanned(log, 10), [20, 30]);
  // One event larger than the whole budget leaves the log empty at that event.
  log.append([entry(40, 100)]);
  assert.equal(log.floor, 40);
  assert.equal(log.newest, 40);
  assert.equal(log.bytes, 0);
});

test('dropThrough forgets what retention removed, and raises the floor even past the newest event', () => {
  const log = new HotLog(1000, 0);
  log.append([10, 20, 30].map((t) => entry(t, 1)));
  log.dropThrough(20);
  assert.equal(log.floor, 20);
  assert.deepEqual(scanned(log, 20), [30]);
  log.dropThrough(5);
  assert.equal(log.floor, 20, 'the floor never moves down');
  log.dropThrough(99);
  assert.equal(log.floor, 99);
  assert.equal(log.newest, 99);
  assert.equal(log.bytes, 0);
});

type Step = { kind: 'append'; sizes: number[] } | { kind: 'drop'; back: number };

test('property: after any appends and trims it holds exactly the newest events that fit, above its floor', () => {
  const step: fc.Arbitrary<Step> = fc.oneof(
    // Batches large enough that the evicted prefix passes the compaction threshold (1024).
    fc.record({ kind: fc.constant('append' as const), sizes: fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 600 }) }),
    fc.record({ kind: fc.constant('drop' as const), back: fc.integer({ min: 0, max: 700 }) }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4000 }), fc.array(step, { maxLength: 12 }), (maxBytes, steps) => {
      const log = new HotLog(maxBytes, 0);
      const all: Entry[] = [];
      let trimmed = 0;
      for (const s of steps) {
        if (s.kind === 'append') {
          const batch = s.sizes.map((size, i) => entry((all.length + i + 1) * 10, size));
          all.push(...batch);
          log.append(batch);
        } else {
          trimmed = Math.max(trimmed, (all.length - s.back) * 10);
          log.dropThrough((all.length - s.back) * 10);
        }
      }
      // The model: the longest suffix within the budget, minus what retention removed.
      let fit = 0;
      let bytes = 0;
      while (fit < all.length && bytes + all[all.length - 1 - fit]!.json.byteLength <= maxBytes) bytes += all[all.length - 1 - fit++]!.json.byteLength;
      const held = all.slice(all.length - fit).filter((e) => e.timeUs > trimmed);
      assert.deepEqual(scanned(log, log.floor), held.map((e) => e.timeUs));
      assert.equal(log.bytes, held.reduce((sum, e) => sum + e.json.byteLength, 0));
      assert.ok(log.bytes <= maxBytes);
      // Contiguous: the floor is just below the oldest event held (or the newest ever, when none is).
      const below = all.filter((e) => e.timeUs < (held[0]?.timeUs ?? Infinity)).at(-1)?.timeUs ?? 0;
      assert.equal(log.floor, Math.max(below, trimmed));
      assert.equal(log.newest, held.at(-1)?.timeUs ?? log.floor);
    }),
    { numRuns: 200 },
  );
});
