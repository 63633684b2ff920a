/**
 * The compiled build — what `npm start`, the `contrail` bin and the Docker image run — works on
 * plain Node with no TypeScript loader: `npm test` builds dist/cli.js first (`npm run build`),
 * and here it is started as an operator would, fed by a relay and read by a client.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeRelay } from './support/fake-relay.ts';
import { tempDir } from './support/gateway.ts';
import { POST, Subscription, Upstream } from './support/subscribe-client.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILT_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** The environment without CONTRAIL_* variables (they are flags) or a loader in NODE_OPTIONS. */
const PLAIN_ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTRAIL_') && name !== 'NODE_OPTIONS'));

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

test('dist/cli.js is the bin: it starts with the bin shebang and answers --help as the source does', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { bin: Record<string, string> };
  assert.equal(pkg.bin.contrail, './dist/cli.js');
  assert.match(readFileSync(BUILT_CLI, 'utf8').split('\n', 1)[0]!, /^#!\/usr\/bin\/env -S node --max-semi-space-size=64$/);
  const compiled = execFileSync(process.execPath, [BUILT_CLI, '--help'], { cwd: ROOT, env: PLAIN_ENV, encoding: 'utf8' });
  const source = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--help'], { cwd: ROOT, env: PLAIN_ENV, encoding: 'utf8' });
  assert.equal(compiled, source);
});

test('the compiled gateway ingests from a relay, serves a subscriber, and stops cleanly on SIGTERM', async () => {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.stop());
  const dir = tempDir();
  cleanups.push(() => dir.remove());
  const child = spawn(
    process.execPath,
    [BUILT_CLI, 'serve', '--upstream', relay.url, '--data-dir', dir.path, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'],
    { cwd: ROOT, env: PLAIN_ENV, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  cleanups.push(() => void child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const record = JSON.parse(line) as { msg?: string; port?: number };
      if (record.msg?.startsWith('serving /subscribe on ') && typeof record.port === 'number') resolve(record.port);
    });
    void exited.then(([code]) => reject(new Error(`dist/cli.js exited with ${code} before serving`)));
  });

  // The gateway serves before its relay connection is up, and a relay sends a client that gave no
  // cursor only what it pushes after the connection: a frame pushed earlier would never arrive.
  await relay.waitForConnections(1);
  const subscriber = await Subscription.open(port, `wantedCollections=${POST}`);
  const upstream = new Upstream(relay, () => port);
  upstream.create('did:plc:compiledbuild000000000000', POST, { $type: POST, text: 'compiled', createdAt: '2026-01-01T00:00:00.000Z' });
  await upstream.settle();
  await subscriber.waitForCount(1);
  const event = JSON.parse(subscriber.texts[0]!) as { did: string; commit: { record: { text: string } } };
  assert.equal(event.did, 'did:plc:compiledbuild000000000000');
  assert.equal(event.commit.record.text, 'compiled');

  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
  await subscriber.closed;
});
