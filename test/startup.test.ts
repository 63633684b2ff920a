/**
 * Start-up as an operator meets it, with real `contrail` processes: the folder it runs from, the
 * data dir and port it claims, and what a failed start leaves behind.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT, startContrail } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';

/** An upstream nobody listens on: the gateway keeps retrying it, which these tests do not mind. */
const NO_UPSTREAM = 'ws://127.0.0.1:9';

function serveArgs(dataDir: string, ...extra: string[]): string[] {
  return ['serve', '--upstream', NO_UPSTREAM, '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', ...extra];
}

test('contrail starts from a folder whose path has a space (and loads its bundled dictionary)', async (t) => {
  const dir = tempDir();
  t.after(() => dir.remove());
  const root = join(dir.path, 'my projects', 'contrail');
  mkdirSync(root, { recursive: true });
  for (const part of ['src', 'dictionaries', 'package.json', 'tsconfig.json']) cpSync(join(PROJECT_ROOT, part), join(root, part), { recursive: true });
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'));
  const contrail = startContrail(serveArgs(join(dir.path, 'data')), { root });
  t.after(() => contrail.stop());
  const serving = await contrail.waitForLog((e) => typeof e.msg === 'string' && e.msg.startsWith('serving /subscribe on '));
  assert.equal(serving.dictionary, join(root, 'dictionaries', 'contrail-v1.zstd-dict'));
  assert.deepEqual(await contrail.stop(), { code: 0, signal: null });
});
