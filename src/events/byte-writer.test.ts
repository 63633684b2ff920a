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

test('digits writes an integer as String does, for every digit count a time_us may have', () => {
  const values = [0, 7, 10, 99_999_999, 100_000_000, 100_000_001, 1_200_000_001, 1_764_115_200_000_000, 2 ** 53 - 1];
  for (let n = 1; n < 1e16; n *= 10) values.push(n - 1, n, n + 1, 3 * n + 7);
  for (const value of values) {
    const writer = new ByteWriter();
    writer.ascii('x');
    writer.digits(value);
    assert.equal(writer.buffer.toString('latin1', 0, writer.length), `x${value}`, String(value));
  }
});
