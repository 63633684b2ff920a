import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter } from './byte-writer.ts';

test('growing keeps what was written past length: an event written head last (length set back before its record) keeps its record', () => {
  const writer = new ByteWriter();
  const recordAt = writer.buffer.length - 100;
  writer.length = recordAt;
  writer.ascii('"record"');
  // The head, written before the record, needs more room than the buffer has: it grows.
  writer.length = 0;
  // 30,000 characters: 60,000 bytes, short of the record, but room for 90,000 is reserved.
  writer.utf8('é'.repeat(30_000));
  assert.ok(writer.buffer.length > recordAt + 100, 'the buffer grew');
  assert.equal(writer.buffer.toString('latin1', recordAt, recordAt + 8), '"record"');
});
