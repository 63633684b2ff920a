/**
 * The README's Design section names the tests that prove each invariant: every file it names
 * exists, and every test name it quotes after a file — "…" marks a shortened name — is written
 * in that file, so a renamed or removed test cannot leave the README claiming a proof that is gone.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const ROOT = new URL('../', import.meta.url);
const collapse = (text: string) => text.replace(/\s+/g, ' ');

function designSection(): string {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  const start = readme.indexOf('\n## Design\n');
  assert.ok(start >= 0, 'the README has a Design section');
  const end = readme.indexOf('\n## ', start + 1);
  return collapse(readme.slice(start, end < 0 ? undefined : end));
}

/** Each `path` the section names, with the quoted names in the parentheses right after it. */
function namedTests(section: string): Array<{ path: string; names: string[] }> {
  const references = /`((?:test|src)\/[^`\s]+\.test\.(?:ts|mjs))`(?: \(((?:[^()]|\([^()]*\))*)\))?/g;
  return [...section.matchAll(references)].map(([, path = '', inParentheses = '']) => ({
    path,
    names: [...inParentheses.matchAll(/"([^"]+)"/g)].map(([, name = '']) => name),
  }));
}

test('every test file the Design section names exists, and every test name it quotes is in that file', () => {
  const references = namedTests(designSection());
  assert.ok(references.length >= 20, `the section names its tests (found ${references.length} references)`);
  let quoted = 0;
  const missing: string[] = [];
  for (const { path, names } of references) {
    const file = new URL(path, ROOT);
    assert.ok(existsSync(file), `${path}, named in the README's Design section, does not exist`);
    const source = collapse(readFileSync(file, 'utf8').replace(/\\(['"`])/g, '$1'));
    for (const name of names) {
      for (const fragment of name.split(/…|\.\.\./).map((part) => part.trim())) {
        if (fragment.length === 0) continue;
        quoted++;
        if (!source.includes(fragment)) missing.push(`${path}: "${fragment}"`);
      }
    }
  }
  assert.deepEqual(missing, [], "test names the README's Design section quotes that their files do not have");
  assert.ok(quoted >= 30, `the section quotes test names (found ${quoted})`);
});
