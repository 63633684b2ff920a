import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { compress } from 'zstd-napi';
import type { Entry } from '../events/index.ts';
import type { Batch } from '../store/index.ts';
import { decodeStreamRecord, encodeBatchRecords, fitsOneRecord } from './stream-record.ts';

const MAX_BYTES = 64 * 1024;

/** Events whose text compresses about as real ones do: repeated keys, one random field each. */
function batchOf(count: number): Batch {
  const entries: Entry[] = [];
  const revs = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const did = `did:plc:${randomBytes(12).toString('hex').slice(0, 24)}`;
    const json = `{"did":"${did}","time_us":${1_700_000_000_000_000 + i},"kind":"commit","commit":{"rev":"3l${i}","operation":"create","collection":"app.bsky.feed.post","rkey":"${randomBytes(8).toString('base64url')}","record":{"text":"${randomBytes(120).toString('base64')}"}}}`;
    entries.push({ timeUs: 1_700_000_000_000_000 + i, seq: 1_000 + i, did, kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(json) });
    revs.set(did, `3l${i}`);
  }
  return { entries, revs, cursor: { url: 'wss://relay.example/xrpc/com.atproto.sync.subscribeRepos', seq: 4_242 } };
}

const decoded = (records: Uint8Array[]) =>
  records.map((bytes) => {
    const decodedRecord = decodeStreamRecord(bytes);
    assert.equal(decodedRecord.type, 'batch');
    return decodedRecord as Extract<typeof decodedRecord, { type: 'batch' }>;
  });

test('a batch that fits is one record, without the part flag', () => {
  const batch = batchOf(20);
  const records = encodeBatchRecords('a', batch, MAX_BYTES);
  const [record, ...rest] = decoded(records);
  assert.equal(rest.length, 0);
  assert.equal(record!.node, 'a');
  assert.equal(record!.more, false);
  assert.deepEqual(record!.batch.cursor, batch.cursor);
  assert.deepEqual(record!.batch.entries, batch.entries);
});

test("a decoded batch's entries own their fields: the DID and collection are strings, not read later from the message (which would keep it alive as long as the store keeps the entry)", () => {
  const [record] = decoded(encodeBatchRecords('a', batchOf(3), MAX_BYTES));
  for (const entry of record!.batch.entries) {
    for (const field of ['did', 'collection', 'kind', 'timeUs', 'seq'] as const) {
      assert.notEqual(Object.getOwnPropertyDescriptor(entry, field)?.value, undefined, `${field} is a value of the entry itself`);
    }
  }
});

test('a batch in the layout older leaders appended (the events\' fields in the JSON header) is still read', () => {
  const batch = batchOf(5);
  const header = Buffer.from(
    JSON.stringify({
      node: 'old',
      cursor: batch.cursor,
      revs: [...batch.revs],
      entries: batch.entries.map(({ json: _json, ...fields }) => fields),
      lengths: batch.entries.map((entry) => entry.json.byteLength),
    }),
  );
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.byteLength);
  const [record] = decoded([Buffer.concat([Buffer.from('B'), compress(Buffer.concat([length, header, ...batch.entries.map((entry) => entry.json)]))])]);
  assert.equal(record!.node, 'old');
  assert.deepEqual(record!.batch, batch);
});

test('a batch over the limit is split at event boundaries into parts that each fit and add up to it', () => {
  const batch = batchOf(3_000);
  const records = encodeBatchRecords('a', batch, MAX_BYTES);
  assert.ok(records.length >= 5, `${records.length} parts`);
  for (const bytes of records) assert.ok(bytes.byteLength <= MAX_BYTES, `a part of ${bytes.byteLength} bytes`);
  const parts = decoded(records);
  assert.deepEqual(
    parts.map((part) => part.more),
    parts.map((_, i) => i < parts.length - 1),
    'every part but the last says more follow',
  );
  assert.deepEqual(
    parts.map((part) => part.batch.cursor),
    parts.map((_, i) => (i < parts.length - 1 ? undefined : batch.cursor)),
    'only the last part carries the upstream cursor',
  );
  assert.deepEqual(parts.flatMap((part) => part.batch.entries), batch.entries);
  assert.deepEqual(new Map(parts.flatMap((part) => [...part.batch.revs])), batch.revs);
});

test('an event too big for a record on its own is recognised before splitting', () => {
  const [small] = batchOf(1).entries;
  const big = { ...small!, json: Buffer.from(`{"text":"${randomBytes(MAX_BYTES).toString('base64')}"}`) };
  assert.equal(fitsOneRecord('a', small!, MAX_BYTES), true);
  assert.equal(fitsOneRecord('a', big, MAX_BYTES), false);
});
