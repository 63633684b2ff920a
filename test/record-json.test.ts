import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import { dataModelToJson, recordToJson } from '../src/events/record-json.ts';
import { dagJsonToCbor, fromDagJson } from './support/dag-json.ts';
import { readJsonFixture } from './support/fixtures.ts';
import { goSorted, objectKeyLists } from './support/json-keys.ts';

const DIR = 'atproto-interop-tests/data-model/';
const BLOB_KEYS = ['$type', 'ref', 'mimeType', 'size'];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

function cidOf(bytes: Uint8Array): string {
  return CID.createV1(dagCbor.code, createDigest(0x12, createHash('sha256').update(bytes).digest())).toString();
}

/** Every object in the JSON text has its keys in Go's map order, except blobs, which keep theirs. */
function assertJetstreamKeyOrder(json: string): void {
  for (const keys of objectKeyLists(json)) {
    if (keys[0] === '$type' && keys.length === 4 && keys[1] === 'ref') assert.deepEqual(keys, BLOB_KEYS);
    else assert.deepEqual(keys, goSorted(keys), `keys out of order in ${json.slice(0, 120)}`);
  }
}

const fixtures = 'data-model-fixtures.json';
test(`every vector in ${fixtures}: CBOR decodes to the expected JSON, and hashes to its CID`, () => {
  const vectors = readJsonFixture<Array<{ json: unknown; cbor_base64: string; cid: string }>>(DIR + fixtures);
  assert.ok(vectors.length >= 3);
  for (const vector of vectors) {
    const cbor = new Uint8Array(Buffer.from(vector.cbor_base64, 'base64'));
    assert.equal(cidOf(cbor), vector.cid);
    const json = dataModelToJson(cbor);
    assert.deepEqual(JSON.parse(json), vector.json);
    assertJetstreamKeyOrder(json);
    // The converter the other tests rely on produces the fixture's exact bytes.
    assert.ok(sameBytes(dagJsonToCbor(vector.json), cbor), 'the converter does not reproduce the fixture bytes');
  }
  // Hand-checked: the blob vector is written exactly so, blob keys in Jetstream's order.
  const blobVector = vectors.find((v) => JSON.stringify(v.json).includes('"blob"'))!;
  assert.equal(
    dataModelToJson(new Uint8Array(Buffer.from(blobVector.cbor_base64, 'base64'))),
    '{"a":{"$link":"bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"},' +
      '"b":{"$bytes":"nFERjvLLiw9qm45JrqH9QTzyC2Lu1Xb4ne6+sBrCzI0"},' +
      '"c":{"$type":"blob","ref":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},"mimeType":"image/jpeg","size":10000}}',
  );
});

const valid = 'data-model-valid.json';
test(`every vector in ${valid} encodes to DAG-CBOR and round-trips through the writer`, () => {
  const vectors = readJsonFixture<Array<{ note: string; json: Record<string, unknown> }>>(DIR + valid);
  assert.ok(vectors.length >= 5);
  for (const { note, json } of vectors) {
    const cbor = dagJsonToCbor(json);
    const out = dataModelToJson(cbor);
    assert.deepEqual(JSON.parse(out), json, note);
    assertJetstreamKeyOrder(out);
    assert.ok(sameBytes(dagJsonToCbor(JSON.parse(out)), cbor), `${note}: not the same block after a round trip`);
    if (isRecordShaped(json.rcrd)) assert.deepEqual(JSON.parse(recordToJson(dagJsonToCbor(json.rcrd))), json.rcrd, note);
  }
});

function isRecordShaped(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && '$type' in value;
}

/**
 * Which layer rejects each invalid vector. `converter`: the DAG-JSON text has no DAG-CBOR form.
 * `writer`: it encodes, and dataModelToJson refuses it. `record`: a fine data-model value, but
 * not a record, so recordToJson refuses it. A new vector fails until it is placed here.
 */
const INVALID: Record<string, 'converter' | 'writer' | 'record'> = {
  // A bare string is a data-model value, but a record must be a map.
  'top-level not an object': 'record',
  // Integers only: our writer refuses CBOR floats (Jetstream's indigo parser too, unless integral).
  float: 'writer',
  // `$type` must be a non-empty string wherever it appears (as indigo's parser, which Jetstream uses, insists).
  'record with $type null': 'writer',
  'record with $type wrong type': 'writer',
  'record with empty $type string': 'writer',
  'blob with string size': 'writer',
  'blob with missing key': 'writer',
  // Not the one-key string form, so they stay ordinary maps whose `$bytes`/`$link` key is reserved.
  'bytes with wrong field type': 'writer',
  'bytes with extra fields': 'writer',
  'link with wrong field type': 'writer',
  'link with extra fields': 'writer',
  // "." is not a CID: there is nothing to put in tag 42.
  'link with bogus CID': 'converter',
};

const invalid = 'data-model-invalid.json';
test(`every vector in ${invalid} is rejected, by the layer that should`, () => {
  const vectors = readJsonFixture<Array<{ note: string; json: unknown }>>(DIR + invalid);
  assert.ok(vectors.length >= 10);
  for (const { note, json } of vectors) {
    const layer = INVALID[note];
    assert.ok(layer, `no decision for the invalid vector ${JSON.stringify(note)}`);
    if (layer === 'converter') {
      assert.throws(() => fromDagJson(json), note);
      continue;
    }
    const cbor = dagJsonToCbor(json);
    if (layer === 'writer') {
      assert.throws(() => dataModelToJson(cbor), note);
      assert.throws(() => recordToJson(dagCbor.encode({ $type: 'com.example.wrapper', value: fromDagJson(json) })), note);
    } else {
      assert.doesNotThrow(() => dataModelToJson(cbor), note);
      assert.throws(() => recordToJson(cbor), note);
    }
  }
});

const record = (value: Record<string, unknown>) => recordToJson(dagCbor.encode({ $type: 'com.example.test', ...value }));

test('strings are escaped as Go does: <, >, &, U+2028/9 and control characters as \\u sequences', () => {
  const text = '<b>Tom & "Jerry"</b>\u2028\u2029 back\\slash \\b \n\r\t\b\f\u0001\u001f\u007f é 😀';
  const json = record({ text, ['<&>']: 1 });
  assert.equal(
    json,
    '{"$type":"com.example.test","\\u003c\\u0026\\u003e":1,"text":"\\u003cb\\u003eTom \\u0026 \\"Jerry\\"\\u003c/b\\u003e\\u2028\\u2029 back\\\\slash \\\\b \\n\\r\\t\\u0008\\u000c\\u0001\\u001f\u007f é 😀"}',
  );
  assert.deepEqual(JSON.parse(json), { $type: 'com.example.test', '<&>': 1, text });
});

test('bytes are base64 without padding; links are {"$link"}', () => {
  const cid = CID.parse('bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity');
  const json = record({ b0: new Uint8Array(0), b1: new Uint8Array([1]), b2: new Uint8Array([1, 2]), b3: new Uint8Array([1, 2, 3]), b4: new Uint8Array([0xfb, 0xff]), link: cid });
  assert.equal(
    json,
    '{"$type":"com.example.test","b0":{"$bytes":""},"b1":{"$bytes":"AQ"},"b2":{"$bytes":"AQI"},"b3":{"$bytes":"AQID"},"b4":{"$bytes":"+/8"},' +
      '"link":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"}}',
  );
});

test('integers beyond 2^53 are written exactly, from their bigint', () => {
  const json = record({ big: 2n ** 53n + 1n, max: 2n ** 63n - 1n, min: -(2n ** 63n), small: -1, zero: 0 });
  assert.equal(json, '{"$type":"com.example.test","big":9007199254740993,"max":9223372036854775807,"min":-9223372036854775808,"small":-1,"zero":0}');
});

test('keys are sorted by UTF-8 bytes, as Go sorts map keys, not by UTF-16 code units', () => {
  // U+FFFF is EF BF BF in UTF-8, before 😀's F0…; in UTF-16 😀's surrogate D83D sorts first.
  const json = record({ '😀': 1, '\uffff': 2, a: 3, B: 4, é: 5 });
  assert.deepEqual(objectKeyLists(json)[0], ['$type', 'B', 'a', 'é', '\uffff', '😀']);
});

test('a blob is written $type, ref, mimeType, size whatever the CBOR order', () => {
  const ref = CID.parse('bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity');
  const json = record({ avatar: { size: 12, mimeType: 'image/png', ref, $type: 'blob' } });
  assert.equal(json, `{"$type":"com.example.test","avatar":{"$type":"blob","ref":{"$link":"${ref}"},"mimeType":"image/png","size":12}}`);
  assert.throws(() => record({ avatar: { $type: 'blob', ref, mimeType: 'image/png', size: 12, extra: true } }));
  assert.throws(() => record({ avatar: { $type: 'blob', ref: ref.toString(), mimeType: 'image/png', size: 12 } }));
});

test('recordToJson rejects what is not a record: no $type, a non-string or empty $type, not a map', () => {
  assert.throws(() => recordToJson(dagCbor.encode({ text: 'hi' })), /\$type/);
  assert.throws(() => recordToJson(dagCbor.encode({ $type: 7 })), /\$type/);
  assert.throws(() => recordToJson(dagCbor.encode({ $type: '' })), /\$type/);
  assert.throws(() => recordToJson(dagCbor.encode(['app.bsky.feed.like'])), /not a map/);
  assert.throws(() => recordToJson(dagCbor.encode(CID.parse('bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity'))), /not a map/);
  assert.equal(recordToJson(dagCbor.encode({ $type: 'app.bsky.feed.like' })), '{"$type":"app.bsky.feed.like"}');
});

test('the writer refuses floats, reserved keys and a bad nested $type anywhere in the record', () => {
  assert.throws(() => record({ deep: [{ a: 1.5 }] }), /float/);
  assert.throws(() => record({ deep: { $link: 'bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity' } }), /reserved/);
  assert.throws(() => record({ deep: [{ $bytes: 'AQ' }] }), /reserved/);
  assert.throws(() => record({ embed: { $type: null } }), /\$type/);
  assert.throws(() => record({ embed: [{ $type: '' }] }), /\$type/);
  assert.doesNotThrow(() => record({ embed: { $type: 'app.bsky.embed.images', images: [] }, whole: 3.0 }));
});

test('tag 42 must hold a CID with the 0x00 prefix', () => {
  // {"$type": "x.y.z", "l": 42(h'01...')}: a link without the identity-multibase prefix.
  const cid = CID.parse('bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity');
  const good = dagCbor.encode({ $type: 'x.y.z', l: cid });
  const at = Buffer.from(good).indexOf(Buffer.from([0xd8, 0x2a]));
  const bad = Buffer.concat([good.subarray(0, at + 2), Buffer.from([0x58, cid.bytes.length + 1, 0x01]), cid.bytes]);
  assert.throws(() => recordToJson(bad), /CID/);
  assert.equal(recordToJson(good), `{"$type":"x.y.z","l":{"$link":"${cid}"}}`);
});
