/**
 * The byte transcoder (writeRecordJson, what ingest runs) against the token-walking one
 * (recordToJson, the reference): for every block — real records from repo exports and relay
 * frames, the interop vectors, synthetic firehose records, seeded random records full of the
 * awkward cases, and seeded mutations of all of them — both give the same bytes, or both refuse
 * with the same error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { ByteWriter } from '../src/events/byte-writer.ts';
import { writeRecordJson } from '../src/events/record-bytes.ts';
import { recordToJson } from '../src/events/record-json.ts';
import { mutated, randomBlocks, realBlocks, syntheticRecordBlocks } from './support/dag-cbor-fuzz.ts';
import { mulberry32 } from './support/synthetic.ts';

const SEED = 20261202;
const MUTANTS_PER_BLOCK = 4;

type Outcome = { json: Buffer } | { error: string };

function reference(block: Uint8Array): Outcome {
  try {
    return { json: Buffer.from(recordToJson(block)) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const writer = new ByteWriter();

function transcoded(block: Uint8Array): Outcome {
  // Written after something already in the buffer, as events are: nothing before it may change.
  writer.length = 0;
  writer.ascii('{"head":');
  try {
    writeRecordJson(writer, block);
  } catch (err) {
    assert.equal(writer.buffer.toString('latin1', 0, 8), '{"head":');
    return { error: (err as Error).message };
  }
  assert.equal(writer.buffer.toString('latin1', 0, 8), '{"head":');
  return { json: writer.take(8) };
}

function assertSame(block: Uint8Array, what: string): void {
  const expected = reference(block);
  const actual = transcoded(block);
  if ('json' in expected && 'json' in actual) {
    if (!expected.json.equals(actual.json)) assert.fail(`${what}: ${actual.json.toString()} instead of ${expected.json.toString()} (block ${Buffer.from(block).toString('hex')})`);
  } else {
    assert.deepEqual(actual, expected, `${what} (block ${Buffer.from(block).toString('hex')})`);
  }
}

test('real records, MST nodes and interop vectors: the same JSON bytes or the same refusal', () => {
  const blocks = realBlocks();
  assert.ok(blocks.length > 60, `only ${blocks.length} real blocks`);
  for (const [what, block] of blocks) assertSame(block, what);
});

test('synthetic firehose records: the same JSON bytes', () => {
  const blocks = syntheticRecordBlocks(SEED);
  assert.ok(blocks.length > 300);
  for (const [what, block] of blocks) {
    assertSame(block, what);
    assert.ok('json' in reference(block), `${what} should be a valid record`);
  }
});

test('seeded random records with awkward strings, keys, integers, links, bytes and blobs: the same bytes or refusal', () => {
  const blocks = randomBlocks(mulberry32(SEED), 3_000);
  const accepted = blocks.filter(([, block]) => 'json' in reference(block)).length;
  // Both outcomes must be well represented, or the comparison proves little.
  assert.ok(accepted > blocks.length / 5 && accepted < blocks.length * 0.95, `${accepted} of ${blocks.length} accepted`);
  for (const [what, block] of blocks) assertSame(block, what);
});

test('seeded mutations (bit flips, nudges, truncations, insertions) of every block: the same bytes or refusal', () => {
  const rnd = mulberry32(SEED + 1);
  for (const [what, block] of [...realBlocks(), ...syntheticRecordBlocks(SEED), ...randomBlocks(mulberry32(SEED + 2), 500)]) {
    for (let i = 0; i < MUTANTS_PER_BLOCK; i++) assertSame(mutated(block, rnd), `${what}, mutant ${i}`);
  }
});

test('a link, bytes and a blob, written as Jetstream writes them', () => {
  const link = CID.parse('bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a');
  const blob = { $type: 'blob', size: 10000, mimeType: 'image/jpeg', ref: CID.parse('bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity') };
  const outcome = transcoded(dagCbor.encode({ $type: 'x.y.z', zz: blob, l: link, b: new Uint8Array([1, 2, 3, 4]), t: 'a<b' }));
  assert.ok('json' in outcome);
  assert.equal(
    outcome.json.toString(),
    '{"$type":"x.y.z","b":{"$bytes":"AQIDBA"},"l":{"$link":"bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"},"t":"a\\u003cb",' +
      '"zz":{"$type":"blob","ref":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},"mimeType":"image/jpeg","size":10000}}',
  );
});

test('a map or array claiming more entries than its bytes hold: the same refusal, and the records after it are still transcoded', () => {
  // A map of 2^28 entries holding one entry whose value is a map: before the bound, its count moved the shared entries stack to 2^30.
  assertSame(Buffer.from('ba100000006161a1616201', 'hex'), 'map count beyond its bytes');
  assertSame(Buffer.from('a26524747970656178616161' + '9affffffff01', 'hex'), 'array count beyond its bytes');
  for (const [what, block] of syntheticRecordBlocks(SEED).slice(0, 50)) assertSame(block, `after them: ${what}`);
});
