/**
 * Credentials in the upstream URL (user:password@, ?apikey=) reach the relay and nothing else: not
 * /stats (readable from any origin), not the logs, not `contrail inspect`, not the data dir.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { normalizeUpstreamUrl, redactUrl } from '../src/upstream/index.ts';
import { runContrail } from './support/contrail-process.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { httpGet, POST, Upstream } from './support/subscribe-client.ts';

const SECRETS = ['s3cret', 'hunter2', 'alice'];

function assertNoSecret(text: string, where: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} shows ${secret}: ${text.slice(0, 2000)}`);
}

test('redactUrl hides user, password and every query value, and keeps the rest; the demo upstream is shown as named', () => {
  assert.equal(
    redactUrl('wss://alice:s3cret@relay.example:8443/xrpc/com.atproto.sync.subscribeRepos?apikey=hunter2&apikey=x&region=eu'),
    'wss://***:***@relay.example:8443/xrpc/com.atproto.sync.subscribeRepos?apikey=***&region=***',
  );
  assert.equal(redactUrl('wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos'), 'wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos');
  assert.equal(redactUrl('demo'), 'demo', '--upstream demo is shown as it is');
  assert.equal(redactUrl('demo:7'), 'demo:7');
  assert.equal(redactUrl('not a url, perhaps a token'), '***');
});

test('the upstream credentials never show in /stats, the logs, contrail inspect or the saved cursor', async (t) => {
  const relay = await FakeRelay.start();
  const dir = tempDir();
  t.after(async () => {
    await relay.stop();
    dir.remove();
  });
  const upstream = normalizeUpstreamUrl(relay.url.replace('ws://', 'ws://alice:s3cret@') + '?apikey=hunter2');
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  let gateway = await startTestGateway(upstream, dir.path, {}, { logger });
  await relay.waitForConnections(1);
  const up = new Upstream(relay, () => gateway.port);
  up.create(`did:plc:${'a'.repeat(24)}`, POST);
  await up.settle();
  const statsBody = (await httpGet(gateway.port, '/stats')).body.toString();
  assertNoSecret(statsBody, '/stats');
  assert.equal(JSON.parse(statsBody).upstreamCursor.url, redactUrl(upstream));
  await gateway.stop();

  // The saved cursor (kept redacted) still belongs to this upstream: the restart resumes from it.
  gateway = await startTestGateway(upstream, dir.path, {}, { logger });
  await relay.waitForConnections(2);
  assert.deepEqual(relay.cursors, [undefined, 1]);
  await gateway.stop();

  assert.ok(logs.some((line) => line.includes('connecting to upstream')));
  assertNoSecret(logs.join(''), 'the log');
  const { stdout: inspected } = runContrail(['inspect', '--data-dir', dir.path]);
  assert.match(inspected, /upstream cursor seq 1 from ws:\/\/\*\*\*:\*\*\*@127\.0\.0\.1/);
  assertNoSecret(inspected, 'contrail inspect');
  assertNoSecret(readFileSync(join(dir.path, 'data.mdb')).toString('latin1'), 'the data dir');
});
