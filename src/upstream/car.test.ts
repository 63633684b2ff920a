/**
 * CarSlice against @ipld/car's reader on real repo exports, and against damaged slices: it finds
 * every block by its CID bytes, finds nothing else, and refuses a malformed slice with bad_car.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CarBufferReader } from '@ipld/car/buffer-reader';
import { blockLength, headerLength } from '@ipld/car/buffer-writer';
import { CID } from 'multiformats/cid';
import { readFixture } from '../../test/support/fixtures.ts';
import { carOf, cborBlock } from '../../test/support/frames.ts';
import { CarSlice } from './car.ts';
import { DropError } from './drop.ts';

function refusal(bytes: Uint8Array): string | undefined {
  try {
    new CarSlice(bytes);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof DropError, `threw ${String(err)}`);
    assert.equal(err.reason, 'bad_car');
    return err.message;
  }
}

for (const name of ['repo-jetstream.car', 'repo-tiny.car']) {
  test(`every block of ${name} (a real repo export) is found by its CID, with the bytes @ipld/car reads`, () => {
    const bytes = readFixture(`cars/${name}`);
    const blocks = [...CarBufferReader.fromBytes(bytes).blocks()];
    const slice = new CarSlice(bytes);
    assert.ok(blocks.length > 5);
    assert.equal(slice.blockCount, blocks.length);
    for (const block of blocks) assert.deepEqual(slice.find(block.cid.bytes), block.bytes, block.cid.toString());
  });
}

test('a CID the slice does not hold is not found, even one differing only in its last byte', () => {
  const [a, b] = [cborBlock({ a: 1 }), cborBlock({ b: 2 })];
  const blocks = [a, b];
  const slice = new CarSlice(carOf([a.cid], blocks));
  const other = Uint8Array.from(b.cid.bytes);
  other[other.length - 1]! ^= 1;
  assert.equal(slice.find(other), undefined);
  assert.equal(slice.find(cborBlock({ c: 3 }).cid.bytes), undefined);
  assert.equal(slice.find(b.cid.bytes.subarray(0, 10)), undefined, 'a prefix of a CID is not that CID');
  assert.deepEqual(slice.find(b.cid.bytes), b.bytes);
});

test('cut anywhere, a slice is read whole up to a block boundary and refused with bad_car elsewhere', () => {
  const first = cborBlock({ a: 1 });
  const blocks = [first, cborBlock({ text: 'x'.repeat(200) }), cborBlock([1, 2, 3])];
  const roots = [first.cid];
  const car = carOf(roots, blocks);
  const boundaries = new Map<number, number>();
  let end = headerLength({ roots });
  boundaries.set(end, 0);
  blocks.forEach((block, i) => boundaries.set((end += blockLength(block)), i + 1));
  assert.equal(end, car.length);
  for (let cut = 0; cut <= car.length; cut++) {
    const complete = boundaries.get(cut);
    const why = refusal(car.subarray(0, cut));
    if (complete === undefined) {
      assert.ok(why !== undefined, `a slice cut at byte ${cut} of ${car.length} was accepted`);
    } else {
      assert.equal(why, undefined, `cut at the boundary ${cut}`);
      const slice = new CarSlice(car.subarray(0, cut));
      assert.equal(slice.blockCount, complete);
      for (const [i, block] of blocks.entries()) assert.equal(slice.find(block.cid.bytes) !== undefined, i < complete);
    }
  }
});

test('malformed slices are refused with bad_car and a reason', () => {
  const block = cborBlock({ a: 1 });
  const car = carOf([block.cid], [block]);
  const header = headerLength({ roots: [block.cid] });
  assert.match(refusal(Uint8Array.of(0x00))!, /header is empty/);
  // A CIDv0 (a bare sha2-256 multihash): atproto's CARs hold CIDv1 only.
  const v0 = CID.createV0(block.cid.multihash as Parameters<typeof CID.createV0>[0]);
  assert.match(refusal(carOf([block.cid], [{ cid: v0, bytes: block.bytes }]))!, /CID version 18/);
  // A section whose length is shorter than the CID it starts with.
  const short = Buffer.from(car);
  short[header] = 10;
  assert.match(refusal(short.subarray(0, header + 11))!, /shorter than its CID/);
  // A section length that never ends (nine continuation bytes).
  assert.match(refusal(Buffer.concat([car.subarray(0, header), Buffer.alloc(9, 0xff)]))!, /varint longer than 8 bytes/);
  assert.match(refusal(Buffer.concat([car.subarray(0, header), Buffer.of(0x80)]))!, /ends inside a varint/);
});
