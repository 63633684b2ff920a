/**
 * The MST proof remembers each key's height per thread (KeyHeights, src/verify/mst-node.ts), so a
 * repo's keys, which recur node after node and commit after commit, are hashed once. It was bounded
 * by count only (100,000 keys), and a key may be 1,024 characters (assertMstKey, as atproto
 * allows): a relay, or a repo, with long keys filled it to about 100 MB on every verify thread
 * before it was cleared. Bounded by the bytes its keys take, it stays near its bound whatever the
 * keys' length. Found by the verification review.
 *
 * Measured as the heap this thread keeps after a full GC: what the cache holds, not an estimate.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { KeyHeights } from '../src/verify/mst-node.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const KEYS = 100_000;
const COLLECTION = 'app.bsky.feed.post/';
/** The longest key atproto allows: 1,024 characters. */
const RKEY_LENGTH = 1_024 - COLLECTION.length;

/** Key `i`, a flat string of its own as a decoded node's keys are (not sharing its characters with others). */
function longKey(i: number): string {
  const rkey = Buffer.alloc(RKEY_LENGTH, 'a');
  rkey.write(i.toString(36), 0, 'latin1');
  return COLLECTION + rkey.toString('latin1');
}

/** A key's MST height computed afresh: leading zero bit pairs of its SHA-256. */
function heightOf(key: string): number {
  let zeros = 0;
  for (const byte of createHash('sha256').update(key, 'latin1').digest()) {
    const leading = Math.clz32(byte) - 24;
    zeros += Math.floor(leading / 2);
    if (byte !== 0) break;
  }
  return zeros;
}

test('the key heights a thread remembers stay within a few MB however long the keys are, and stay right', () => {
  const heights = new KeyHeights();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < KEYS; i++) {
    const key = longKey(i);
    const height = heights.of(key);
    if (i % 997 === 0) assert.equal(height, heightOf(key), `height of key ${i}`);
  }
  gc();
  const kept = process.memoryUsage().heapUsed - before;
  assert.ok(kept < 16 * 1024 * 1024, `${(kept / 1024 / 1024).toFixed(1)} MB kept for ${KEYS} keys of 1,024 characters`);
  // Remembered or computed again after a clear, a key's height is the same.
  for (let i = 0; i < KEYS; i += 4_999) assert.equal(heights.of(longKey(i)), heightOf(longKey(i)), `height of key ${i}, asked again`);
});
