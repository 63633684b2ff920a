import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base32 } from 'multiformats/bases/base32';
import { createHash } from 'node:crypto';
import { base32Length, base32Multibase, writeBase32 } from './base32.ts';

test('base32Multibase and writeBase32 write what multiformats writes, for every length up to 80 bytes', () => {
  for (let length = 0; length <= 80; length++) {
    // Arbitrary bytes of each length: SHA-512 digests of the length, repeated.
    const digest = createHash('sha512').update(String(length)).digest();
    const bytes = Uint8Array.from({ length }, (_, i) => digest[i % digest.length]!);
    assert.equal(base32Multibase(bytes), base32.encode(bytes));
    const target = new Uint8Array(base32Length(length) + 4);
    const end = writeBase32(bytes, 0, length, target, 2);
    assert.equal(end, 2 + base32Length(length));
    assert.equal(Buffer.from(target.subarray(2, end)).toString('latin1'), base32.encode(bytes).slice(1));
  }
});
