/**
 * The byte transcoder (writeRecordJson, what ingest runs) against the token-walking one
 * (recordToJson, the reference): for every block — real records from repo exports and relay
 * frames, the interop vectors, synthetic firehose records, seeded random records full of the
 * awkward cases, and seeded mutations of all of them — both give the same bytes, or both refuse
 * with the same error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import * as dagCbor from '@ipld/dag-cbor';
import { CarBufferReader } from '@ipld/car/buffer-reader';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { ByteWriter } from '../src/events/byte-writer.ts';
import { writeRecordJson } from '../src/events/record-bytes.ts';
import { recordToJson } from '../src/events/record-json.ts';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { dagJsonToCbor } from './support/dag-json.ts';
import { fixturePath, readFixture, readJsonFixture } from './support/fixtures.ts';
import { mulberry32, SyntheticFirehose } from './support/synthetic.ts';

const SEED = 20261202;
const RANDOM_RECORDS = 3_000;
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
  return { json: writer.take([8, writer.length]) };
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

/** Every record block of real repo exports and relay frames, and the interop vectors as records. */
function realBlocks(): Array<[string, Uint8Array]> {
  const blocks: Array<[string, Uint8Array]> = [];
  for (const car of ['repo-jetstream.car', 'repo-tiny.car']) {
    // MST nodes and the commit are DAG-CBOR too, and not records: both must refuse them alike.
    for (const block of CarBufferReader.fromBytes(readFixture(`cars/${car}`)).blocks()) blocks.push([`${car} ${block.cid}`, block.bytes]);
  }
  const frames = 'samples/rsky/rsky-relay/tests/interop/frames-bin/';
  for (const name of readdirSync(fixturePath(frames))) {
    const message = parseMessage(decodeFrame(readFixture(frames + name), Infinity));
    if (message.type === 'commit') for (const op of message.ops) if (op.record) blocks.push([`${name} ${op.collection}`, op.record]);
  }
  for (const file of ['data-model-fixtures.json', 'data-model-valid.json', 'data-model-invalid.json']) {
    const vectors = readJsonFixture<Array<{ json: unknown; note?: string }>>(`atproto-interop-tests/data-model/${file}`);
    for (const { json, note } of vectors) {
      try {
        blocks.push([`${file} ${note ?? ''}`, dagJsonToCbor({ $type: 'com.example.vector', value: json })]);
        blocks.push([`${file} ${note ?? ''} (bare)`, dagJsonToCbor(json)]);
      } catch {
        // A vector DAG-CBOR cannot encode (invalid ones) has no block to compare.
      }
    }
  }
  return blocks;
}

function syntheticBlocks(): Array<[string, Uint8Array]> {
  const blocks: Array<[string, Uint8Array]> = [];
  for (const frame of new SyntheticFirehose({ seed: SEED, accounts: 50 }).frames(400)) {
    const message = parseMessage(decodeFrame(frame.bytes, Infinity));
    if (message.type === 'commit') for (const op of message.ops) if (op.record) blocks.push([`synthetic ${op.collection}`, op.record]);
  }
  return blocks;
}

/** Strings that JSON, Go or UTF-8 treat specially, beside ordinary ones. */
const AWKWARD_STRINGS = [
  '', 'hello', 'a"b', 'back\\slash', '<b>&amp;</b>', '\u2028\u2029', '\b\f\n\r\t\u0000\u001f\u007f', 'héllo wörld', '日本語',
  '😀 emoji', '\ufeffBOM first', 'mid\ufeffBOM', '\\b not an escape', 'x'.repeat(40), 'é'.repeat(40), '\ud800 lone', 'plain-key_1.2:3#$',
];
const AWKWARD_KEYS = ['text', '$type', 'createdAt', 'a', 'b', 'aa', 'B', '_', '#x', 'with space', 'é', '😀', '', 'z9', '$other'];
const RESERVED_KEYS = ['$link', '$bytes'];
const INTEGERS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -24, -25, -256, -257, -(2 ** 32), -(2 ** 32) - 1];

function randomValue(rnd: () => number, depth: number): unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const kind = Math.floor(rnd() * (depth > 3 ? 7 : 10));
  switch (kind) {
    case 0:
    case 1:
      return pick(AWKWARD_STRINGS);
    case 2:
      return pick(INTEGERS);
    case 3:
      return rnd() < 0.1 ? 1.5 : pick([true, false, null]);
    case 4:
      return new Uint8Array(Array.from({ length: Math.floor(rnd() * 6) }, () => Math.floor(rnd() * 256)));
    case 5:
      return CID.createV1(rnd() < 0.5 ? dagCbor.code : 0x55, sha256.digest(new Uint8Array([Math.floor(rnd() * 256)])) as never);
    case 6:
      return { $type: 'blob', ref: CID.parse('bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity'), mimeType: rnd() < 0.9 ? 'image/jpeg' : 7, size: rnd() < 0.9 ? 10000 : pick([-1, 'big']) };
    case 7:
      return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(rnd, depth + 1));
    default:
      return randomMap(rnd, depth);
  }
}

function randomMap(rnd: () => number, depth: number): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (let n = Math.floor(rnd() * 5); n > 0; n--) {
    const keys = rnd() < 0.05 ? RESERVED_KEYS : AWKWARD_KEYS;
    map[keys[Math.floor(rnd() * keys.length)]!] = randomValue(rnd, depth + 1);
  }
  return map;
}

function randomBlocks(rnd: () => number): Array<[string, Uint8Array]> {
  const blocks: Array<[string, Uint8Array]> = [];
  for (let i = 0; i < RANDOM_RECORDS; i++) {
    // Mostly records (a map with a $type); now and then a map without one, or no map at all.
    const choice = rnd();
    const record = choice < 0.85 ? { $type: 'com.example.random', ...randomMap(rnd, 0) } : choice < 0.95 ? randomMap(rnd, 0) : randomValue(rnd, 0);
    try {
      blocks.push([`random ${i}`, dagCbor.encode(record)]);
    } catch {
      // A float DAG-CBOR will not encode (NaN-like) has no block.
    }
  }
  return blocks;
}

function mutated(block: Uint8Array, rnd: () => number): Uint8Array {
  const out = Buffer.from(block);
  const at = Math.floor(rnd() * out.length);
  switch (Math.floor(rnd() * 4)) {
    case 0:
      out[at] = out[at]! ^ (1 << Math.floor(rnd() * 8));
      return out;
    case 1:
      out[at] = (out[at]! + (rnd() < 0.5 ? 1 : 255)) & 0xff; // lengths and counts live in small bytes
      return out;
    case 2:
      return out.subarray(0, at);
    default:
      return Buffer.concat([out.subarray(0, at), Buffer.from([Math.floor(rnd() * 256)]), out.subarray(at)]);
  }
}

test('real records, MST nodes and interop vectors: the same JSON bytes or the same refusal', () => {
  const blocks = realBlocks();
  assert.ok(blocks.length > 60, `only ${blocks.length} real blocks`);
  for (const [what, block] of blocks) assertSame(block, what);
});

test('synthetic firehose records: the same JSON bytes', () => {
  const blocks = syntheticBlocks();
  assert.ok(blocks.length > 300);
  for (const [what, block] of blocks) {
    assertSame(block, what);
    assert.ok('json' in reference(block), `${what} should be a valid record`);
  }
});

test('seeded random records with awkward strings, keys, integers, links, bytes and blobs: the same bytes or refusal', () => {
  const blocks = randomBlocks(mulberry32(SEED));
  const accepted = blocks.filter(([, block]) => 'json' in reference(block)).length;
  // Both outcomes must be well represented, or the comparison proves little.
  assert.ok(accepted > blocks.length / 5 && accepted < blocks.length * 0.95, `${accepted} of ${blocks.length} accepted`);
  for (const [what, block] of blocks) assertSame(block, what);
});

test('seeded mutations (bit flips, nudges, truncations, insertions) of every block: the same bytes or refusal', () => {
  const rnd = mulberry32(SEED + 1);
  for (const [what, block] of [...realBlocks(), ...syntheticBlocks(), ...randomBlocks(mulberry32(SEED + 2)).slice(0, 500)]) {
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
