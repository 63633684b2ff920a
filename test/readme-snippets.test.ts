/**
 * The README's client snippets work as written: each runs with plain `node` in a folder made by
 * `npm init -y` (CommonJS by default, hence the `.mjs` names the README gives them), with the
 * packages it names installed, against a live gateway, and prints the post it receives. Only
 * the server address is changed, to this test's port.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { POST, Upstream, recordFor } from './support/subscribe-client.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const AUTHOR = `did:plc:${'snippet'.padEnd(24, 'a')}`;

/** The ```js block that starts with `// <file>`. */
function snippet(file: string): string {
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] ?? '').find((code) => code.startsWith(`// ${file}`));
  assert.ok(block, `the README has a js block starting with "// ${file}"`);
  return block;
}

let relay: FakeRelay;
let gateway: Gateway;
let up: Upstream;
const dir = tempDir('contrail-snippets-');
before(async () => {
  relay = await FakeRelay.start();
  gateway = await startTestGateway(relay.url, join(dir.path, 'data'));
  await relay.waitForConnections(1);
  up = new Upstream(relay, () => gateway.port);
  const project = join(dir.path, 'my-bot');
  mkdirSync(project);
  execFileSync('npm', ['init', '-y'], { cwd: project, stdio: 'ignore' });
  // The packages the README's install line names, from this repository's dev dependencies.
  symlinkSync(join(root, 'node_modules'), join(project, 'node_modules'));
});
after(async () => {
  await gateway.stop();
  await relay.stop();
  dir.remove();
});

for (const file of ['skyware.mjs', 'atcute.mjs']) {
  test(`README snippet ${file} runs with node in an npm init -y folder and prints new posts`, async () => {
    const project = join(dir.path, 'my-bot');
    const { type = 'commonjs' } = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8'));
    assert.equal(type, 'commonjs', 'npm init -y makes a CommonJS package');
    const code = snippet(file).replaceAll('ws://localhost:6008', `ws://127.0.0.1:${gateway.port}`);
    writeFileSync(join(project, file), code);
    const child = spawn(process.execPath, [file], { cwd: project });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    try {
      const text = `hello from ${file}`;
      // Until the client is connected, a post goes by unseen: post until one is printed.
      for (let attempt = 0; !output.includes(text); attempt++) {
        assert.equal(child.exitCode, null, `${file} exited: ${output}`);
        assert.ok(attempt < 60, `${file} printed no post within 30 s: ${output}`);
        up.create(AUTHOR, POST, { ...recordFor(POST, 1, AUTHOR), text });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      assert.match(output, new RegExp(`^${AUTHOR} ${text}$`, 'm'));
    } finally {
      child.kill();
    }
  });
}
