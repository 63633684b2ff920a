/**
 * A fresh clone must stay clean after `npm install`: npm rewrites package-lock.json whenever its
 * copy of package.json's root fields (bin, dependencies, engines, …) differs from the real one.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const readJson = (name: string) => JSON.parse(readFileSync(new URL(`../${name}`, import.meta.url), 'utf8'));

test("package-lock.json's root entry matches package.json, so npm install leaves it as it is", () => {
  const manifest = readJson('package.json');
  const root = readJson('package-lock.json').packages[''];
  for (const field of ['name', 'version', 'license', 'bin', 'engines', 'dependencies', 'devDependencies']) {
    const expected = field === 'bin' ? normalizeBin(manifest.bin) : manifest[field];
    assert.deepEqual(root[field], expected, `package-lock.json's ${field} differs from package.json's: run npm install and commit the lock`);
  }
});

/** npm stores bin paths without a leading "./". */
function normalizeBin(bin: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(bin).map(([name, path]) => [name, path.replace(/^\.\//, '')]));
}
