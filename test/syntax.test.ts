import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDid, isHandle, isNsid, isRecordKey, isTid } from '../src/atproto/syntax.ts';
import { readFixture } from './support/fixtures.ts';

const DIR = 'atproto-interop-tests/syntax/';
const CHECKS = { did: isDid, handle: isHandle, nsid: isNsid, recordkey: isRecordKey, tid: isTid } as const;

/** The vectors of one file: one per line, '#' comments and blank lines skipped, nothing trimmed. */
function vectors(file: string): string[] {
  return readFixture(DIR + file)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0 && !line.startsWith('#'));
}

for (const [name, check] of Object.entries(CHECKS)) {
  for (const validity of ['valid', 'invalid'] as const) {
    const file = `${name}_syntax_${validity}.txt`;
    test(`${name}: every vector in ${file}`, () => {
      const lines = vectors(file);
      assert.ok(lines.length >= 3, `${file} has only ${lines.length} vectors`);
      const wrong = lines.filter((line) => check(line) !== (validity === 'valid'));
      assert.deepEqual(wrong, [], `${name} vectors judged wrongly (expected ${validity})`);
    });
  }
}

test('syntax checks reject non-strings', () => {
  for (const check of Object.values(CHECKS)) {
    for (const value of [undefined, null, 42, ['did:plc:abc'], { toString: () => 'did:plc:abc' }]) {
      assert.equal(check(value), false);
    }
  }
});
