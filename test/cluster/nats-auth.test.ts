/**
 * A NATS that requires authentication, as most run outside a laptop do. `--nats` takes URLs, and
 * a URL carries credentials as `nats://user:password@host:4222` (or a token, `nats://token@host`),
 * but the NATS client ignores a URL's credentials: every node was refused (`Authorization
 * Violation`), whatever the URL said, so no cluster could run on such a NATS. And the refusal
 * printed the URL as given, password and all, to the log and stderr. Found by a black-box look
 * (session 18). The credentials must be used, and never shown.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'auth', nodeId: 'a' };
const PASSWORD = 's3cret-pw';
const TOKEN = 't0ken-s3cret';

/** A JetStream nats-server on 127.0.0.1 started with `auth` (its command-line flags); its client port. */
async function natsServerWith(t: TestContext, auth: string[]): Promise<number> {
  const defer = cleanup(t);
  const dir = tempDir('contrail-nats-auth-');
  defer(() => dir.remove());
  const server = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', dir.path, ...auth], { stdio: ['ignore', 'ignore', 'pipe'] });
  defer(async () => {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
  });
  for await (const line of createInterface({ input: server.stderr! })) {
    const port = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
    if (port) return Number(port);
  }
  throw new Error('nats-server exited before it listened');
}

/** Joins with `servers`, keeping every log line; the connection is closed at the test's end. */
async function join(t: TestContext, servers: string[]) {
  const defer = cleanup(t);
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  const joining = openCluster({ ...OPTIONS, servers }, logger);
  joining.then((connection) => defer(() => connection.nc.close()), () => {});
  return { joining, lines };
}

test('--nats with a user and password in its URL joins a NATS that requires them, and never shows the password', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const port = await natsServerWith(t, ['--user', 'alice', '--pass', PASSWORD]);
  const { joining, lines } = await join(t, [`nats://alice:${PASSWORD}@127.0.0.1:${port}`]);
  await joining;
  assert.ok(lines.some((line) => line.includes('joined the contrail cluster')), 'the node joined');
  assert.ok(!lines.some((line) => line.includes(PASSWORD)), `no log line shows the password: ${lines.filter((line) => line.includes(PASSWORD)).join('')}`);
});

test('--nats with a token as its URL\'s user joins a NATS that requires it', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const port = await natsServerWith(t, ['--auth', TOKEN]);
  const { joining, lines } = await join(t, [`nats://${TOKEN}@127.0.0.1:${port}`]);
  await joining;
  assert.ok(!lines.some((line) => line.includes(TOKEN)), 'no log line shows the token');
});

test('--nats with a wrong password: the error says NATS refused it, names the server, and does not show the password', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const port = await natsServerWith(t, ['--user', 'alice', '--pass', PASSWORD]);
  const wrong = 'not-the-password';
  const { joining } = await join(t, [`nats://alice:${wrong}@127.0.0.1:${port}`]);
  await assert.rejects(joining, (err: Error) => {
    assert.match(err.message, /Authorization Violation/);
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.ok(!err.message.includes(wrong), `the message does not show the password: ${err.message}`);
    return true;
  });
});
