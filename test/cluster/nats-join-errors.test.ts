/**
 * What an operator reads when `--nats` is wrong. `contrail serve` prints the error that stopped
 * it (`contrail: <message>`); joining the cluster printed the NATS client's own: `connection
 * refused` (a typo in the port) with no word of NATS or of which URL, and `jetstream is not
 * enabled` for a nats-server started without -js, whose hint ('start nats-server with -js') a
 * pattern that missed the client's wording never added. Found by review. The message must say it
 * is NATS, which URLs, and what to do.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'joinerrors', nodeId: 'a' };
const logger = pino({ level: 'silent' });

test('--nats naming a port nothing listens on: the error names NATS, the URL and --nats', { skip: natsServerMissing(), timeout: 30_000 }, async () => {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const url = `nats://127.0.0.1:${(probe.address() as { port: number }).port}`;
  await new Promise((resolve) => probe.close(resolve));

  await assert.rejects(openCluster({ ...OPTIONS, servers: [url] }, logger), (err: Error) => {
    assert.match(err.message, /could not connect to NATS/);
    assert.match(err.message, new RegExp(url.replaceAll('.', '\\.')));
    assert.match(err.message, /connection refused/, 'the cause is kept');
    assert.match(err.message, /--nats/);
    return true;
  });
});

test('--nats naming a nats-server without JetStream: the error says to start it with -js', { skip: natsServerMissing(), timeout: 30_000 }, async (t) => {
  const defer = cleanup(t);
  const server = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  defer(async () => {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
  });
  let port: string | undefined;
  for await (const line of createInterface({ input: server.stderr! })) {
    port = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
    if (port) break;
  }
  assert.ok(port, 'nats-server listens');

  await assert.rejects(openCluster({ ...OPTIONS, servers: [`nats://127.0.0.1:${port}`] }, logger), (err: Error) => {
    assert.match(err.message, /JetStream is not enabled/);
    assert.match(err.message, /nats-server with -js/);
    return true;
  });
});
