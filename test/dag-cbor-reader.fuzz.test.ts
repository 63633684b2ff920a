/**
 * readDagCbor (what decodeFrame runs first) against the strict ViewDecoder it stands in for: for
 * real and synthetic subscribeRepos frames, every block of real repo exports, seeded random
 * data-model values and seeded mutations of all of them, whatever readDagCbor reads is exactly
 * what the ViewDecoder makes of the same bytes (values, prototypes, views, where the item ends),
 * and whatever the ViewDecoder refuses, readDagCbor leaves to it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import * as dagCbor from '@ipld/dag-cbor';
import { decodeOptions } from '@ipld/dag-cbor';
import { decodeLinkTag, readDagCbor, ViewDecoder } from '../src/atproto/index.ts';
import { DropError } from '../src/upstream/drop.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { mutated, randomBlocks, realBlocks } from './support/dag-cbor-fuzz.ts';
import { fixturePath, readFixture } from './support/fixtures.ts';
import { mulberry32, SyntheticFirehose } from './support/synthetic.ts';

const SEED = 20261203;
const MUTANTS_PER_INPUT = 6;
const strict = new ViewDecoder({ ...decodeOptions, tags: { ...decodeOptions.tags, 42: decodeLinkTag } });

function frames(): Array<[string, Uint8Array]> {
  const dir = 'samples/rsky/rsky-relay/tests/interop/frames-bin/';
  const real = readdirSync(fixturePath(dir)).map((name): [string, Uint8Array] => [name, readFixture(dir + name)]);
  const synthetic = new SyntheticFirehose({ seed: SEED, accounts: 50 }).frames(300).map((frame): [string, Uint8Array] => [`synthetic ${frame.seq}`, frame.bytes]);
  return [...real, ...synthetic];
}

/** Both items of a frame (header, then body) or the one item of a block, as far as the strict decoder gets. */
function assertAgrees(bytes: Uint8Array, what: string): number {
  let read = 0;
  for (let at = 0, item = 0; at < bytes.length && item < 2; item++) {
    let expected: { value: unknown; end: number } | undefined;
    try {
      const [value, rest] = strict.decodeFirst(bytes.subarray(at));
      expected = { value, end: bytes.length - rest.length };
    } catch {
      expected = undefined;
    }
    const actual = readDagCbor(bytes, at);
    if (!expected) {
      assert.equal(actual, undefined, `${what}: readDagCbor read what the strict decoder refuses (at ${at}: ${Buffer.from(bytes).toString('hex')})`);
      return read;
    }
    if (actual) {
      assert.deepStrictEqual(actual, expected, `${what}, item at ${at}`);
      read++;
    }
    at = expected.end;
  }
  return read;
}

test('real and synthetic frames: every header and body read exactly as the strict decoder reads it', () => {
  const inputs = frames();
  let read = 0;
  for (const [what, bytes] of inputs) read += assertAgrees(bytes, what);
  // Nearly all real frames take the fast path: otherwise this proves little, and ingest gains nothing.
  assert.ok(read >= inputs.length * 2 - 2, `${read} of ${inputs.length * 2} items read`);
});

test('repo export blocks and random data-model values: read exactly as the strict decoder reads them, or left to it', () => {
  for (const [what, bytes] of [...realBlocks(), ...randomBlocks(mulberry32(SEED), 2_000)]) assertAgrees(bytes, what);
});

test('seeded mutations of frames and blocks: never read differently, never read where the strict decoder refuses', () => {
  const rnd = mulberry32(SEED + 1);
  for (const [what, bytes] of [...frames(), ...realBlocks(), ...randomBlocks(mulberry32(SEED + 2), 500)]) {
    for (let i = 0; i < MUTANTS_PER_INPUT; i++) assertAgrees(mutated(bytes, rnd), `${what}, mutant ${i}`);
  }
});

test('nesting: 100 levels read as the strict decoder reads them; a frame nested deeper than the stack allows is a malformed-CBOR drop, not a crash', () => {
  const header = dagCbor.encode({ op: 1, t: '#commit' });
  const nested = (levels: number) => Buffer.concat([header, Buffer.alloc(levels, 0x81), Buffer.from([0x01])]);
  assertAgrees(nested(100), '100 nested arrays');
  assert.throws(
    () => decodeFrame(nested(200_000), 5_000_000),
    (err: unknown) => err instanceof DropError && err.reason === 'malformed_cbor',
  );
});
