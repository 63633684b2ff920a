/**
 * ViewTokenizer subclasses cborg's Tokenizer and relies on its internals: the `data` and `_pos`
 * fields, `options.strict`, and `pos()`. These tests fail if a cborg upgrade changes them, and
 * check that decoding with views gives exactly what cborg's own decoding gives.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode, Tokenizer } from 'cborg';
import fc from 'fast-check';
import { ViewDecoder } from './cbor.ts';

test("cborg's Tokenizer still has the internals ViewTokenizer uses: data, _pos, options, pos()", () => {
  const bytes = encode([1, new Uint8Array([7, 8])]);
  const tokenizer = new Tokenizer(bytes, { strict: true }) as Tokenizer & { data: Uint8Array; _pos: number; options: { strict?: boolean } };
  assert.equal(tokenizer.data, bytes);
  assert.equal(tokenizer._pos, 0);
  assert.equal(tokenizer.options.strict, true);
  tokenizer.next();
  assert.equal(tokenizer._pos, 1, '_pos advances past the array header');
  assert.equal(tokenizer.pos(), tokenizer._pos);
});

test('decoding with views equals cborg decoding, and byte strings are views into the input', () => {
  const decoder = new ViewDecoder({ strict: true });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.array(fc.oneof(fc.integer(), fc.string(), fc.uint8Array({ maxLength: 40 })))), (value) => {
      const bytes = encode(value);
      assert.deepEqual(decoder.decode(bytes), decode(bytes));
    }),
  );
  const input = encode({ blob: new Uint8Array(1000).fill(9) });
  const decoded = decoder.decode(input) as { blob: Uint8Array };
  assert.equal(decoded.blob.buffer, input.buffer, 'no copy');
});

test('strict decoding still refuses a byte-string length in more bytes than needed', () => {
  const decoder = new ViewDecoder({ strict: true });
  assert.throws(() => decoder.decode(new Uint8Array([0x58, 0x01, 0x07])), /more bytes than necessary/);
});
