/**
 * /ready says "connected" only for an upstream that is being ingested. A relay that sends only
 * frames that cannot be decoded, or that accepts the WebSocket and never answers a ping, is
 * connected for most of the time while nothing is stored: /ready must fail with the reason. A
 * quiet relay that answers pings (a small PDS with no writes) must stay ready.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay, startMuteRelay } from './support/fake-relay.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, POST, httpGet, recordFor, withGateway } from './support/subscribe-client.ts';
import { startClient } from './support/upstream-harness.ts';

test('a relay that sends only undecodable frames fails /ready with the reason, and a decodable frame makes it ready again', async () => {
  await withGateway({}, { nothingKeptMs: 1_000 }, async ({ relay, gateway }) => {
    await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once connected');
    let ready = await httpGet(gateway.port, '/ready');
    await waitUntil(
      async () => {
        relay.push({ bytes: Buffer.from('not a frame at all') });
        ready = await httpGet(gateway.port, '/ready');
        return ready.status === 503;
      },
      '/ready to fail while every frame is dropped undecoded',
      15_000,
    );
    assert.match(ready.body.toString(), /could not be decoded, had every op dropped, or was an #info or error frame \(last: bad_header\): none is stored/);
    relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: ALICE, rev: tidFor(1), ops: [{ action: 'create', path: `${POST}/${tidFor(1)}`, record: recordFor(POST, 1, ALICE) }] }) });
    await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once a frame decodes');
  });
});

test('a relay that never answers pings: each dial counts as a failure (the backoff grows) and a reconnect is not ready until it answers', async (t) => {
  const defer = cleanup(t);
  const { server, url } = await startMuteRelay(defer);
  let connections = 0;
  server.on('connection', () => connections++);
  // Each connection lives longer than healthyAfterMs before its ping goes unanswered: what makes it
  // a failure is that it never answered, not how briefly it lived (live: 60 s of pings, 10 s).
  const harness = startClient(url, { pingIntervalMs: 30, healthyAfterMs: 5, backoffBaseMs: 10, backoffMaxMs: 40 });
  defer(() => harness.client.stop());
  await waitUntil(() => connections >= 3, 'three dials of the mute relay');
  const retries = harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  assert.deepEqual(retries.slice(0, 2).map((line) => [line.cause, line.failures]), [['ping_timeout', 1], ['ping_timeout', 2]], 'each unanswered connection is a failure');
  await waitUntil(() => harness.client.connected, 'connected again');
  assert.match(harness.client.notIngesting ?? '', /has not answered.*stopped answering pings/, 'connected again, yet not ready: the last failure is still the reason');
});

test('a quiet relay that answers pings stays ready', async (t) => {
  const defer = cleanup(t);
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const harness = startClient(relay.url, { pingIntervalMs: 250, backoffBaseMs: 10, backoffMaxMs: 40 });
  defer(() => harness.client.stop());
  await waitUntil(() => harness.client.connected, 'the client to connect');
  // Dropped at once, the first connection is a failure: the next one must be ready once it answers.
  relay.dropClients();
  await relay.waitForConnections(2);
  await waitUntil(() => relay.pings >= 3, 'three pings answered');
  assert.ok(harness.client.connected);
  assert.equal(harness.client.notIngesting, undefined);
});
