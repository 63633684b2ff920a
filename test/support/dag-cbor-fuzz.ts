/**
 * Seeded inputs for the DAG-CBOR fuzz tests: random data-model values full of the awkward cases
 * (strings JSON, Go or UTF-8 treat specially, keys that sort or collide oddly, integers at every
 * encoding boundary, links, bytes, blobs good and bad), real and synthetic blocks, and small
 * mutations of encoded blocks.
 */
import { readdirSync } from 'node:fs';
import * as dagCbor from '@ipld/dag-cbor';
import { CarBufferReader } from '@ipld/car/buffer-reader';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { decodeFrame, parseMessage } from '../../src/upstream/index.ts';
import { dagJsonToCbor } from './dag-json.ts';
import { fixturePath, readFixture, readJsonFixture } from './fixtures.ts';
import { SyntheticFirehose } from './synthetic.ts';

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

/** Every record block of real repo exports and relay frames, and the interop vectors as records. */
export function realBlocks(): Array<[string, Uint8Array]> {
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

export function syntheticRecordBlocks(seed: number): Array<[string, Uint8Array]> {
  const blocks: Array<[string, Uint8Array]> = [];
  for (const frame of new SyntheticFirehose({ seed, accounts: 50 }).frames(400)) {
    const message = parseMessage(decodeFrame(frame.bytes, Infinity));
    if (message.type === 'commit') for (const op of message.ops) if (op.record) blocks.push([`synthetic ${op.collection}`, op.record]);
  }
  return blocks;
}

/** Encoded random values: mostly records (a map with a $type), now and then a map without one, or no map at all. */
export function randomBlocks(rnd: () => number, count: number): Array<[string, Uint8Array]> {
  const blocks: Array<[string, Uint8Array]> = [];
  for (let i = 0; i < count; i++) {
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

/** `block` with one seeded change: a bit flipped, a byte nudged by ±1, cut short, or a byte inserted. */
export function mutated(block: Uint8Array, rnd: () => number): Uint8Array {
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

