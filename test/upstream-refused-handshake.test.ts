/**
 * A relay that refuses the WebSocket handshake says how: a 429 or 503 with Retry-After asks for a
 * wait, and contrail honours it (bounded: at most 10 minutes), logging it; a redirect names where
 * the relay went, which contrail does not follow but must show, in the log and in /ready.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { waitUntil } from './support/poll.ts';
import { startClient } from './support/upstream-harness.ts';

/** A server that answers every upgrade with `response` and closes; resolves to its subscribeRepos URL. */
async function refusingServer(defer: (step: () => unknown) => void, response: string): Promise<{ url: string; dials: () => number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  let dials = 0;
  server.on('upgrade', (_request, socket: Socket) => {
    dials++;
    // The client may reset the connection as soon as it has read the refusal (it is done with it):
    // without a listener that reset would be an uncaught ECONNRESET in this process.
    socket.on('error', () => {});
    socket.end(response);
  });
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`, dials: () => dials };
}

const retriesOf = (logs: Array<{ msg: string; [field: string]: unknown }>) => logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');

for (const { status, retryAfter, waitMs } of [
  { status: '503 Service Unavailable', retryAfter: '120', waitMs: 120_000 },
  { status: '429 Too Many Requests', retryAfter: '86400', waitMs: 600_000 },
]) {
  test(`a ${status} with Retry-After: ${retryAfter} is waited for (at most 10 minutes), logged and shown`, async (t) => {
    const defer = cleanup(t);
    const relay = await refusingServer(defer, `HTTP/1.1 ${status}\r\nRetry-After: ${retryAfter}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    const harness = startClient(relay.url, { backoffBaseMs: 1, backoffMaxMs: 8 });
    defer(() => harness.client.stop());
    await waitUntil(() => retriesOf(harness.logs).length >= 1, 'the refused dial to be logged');
    assert.equal(retriesOf(harness.logs)[0]!.retryInMs, waitMs, 'the next dial waits as the relay asked');
    const refused = harness.logs.find((line) => line.msg === 'upstream refused the WebSocket handshake');
    assert.ok(refused, 'the refusal is logged');
    assert.equal(refused.status, Number(status.slice(0, 3)));
    assert.equal(refused.retryAfter, retryAfter);
    assert.match(harness.client.problem ?? '', new RegExp(`^upstream refused the WebSocket handshake: HTTP ${status}; it asked to retry after ${retryAfter} s`));
    assert.equal(relay.dials(), 1, 'not dialled again meanwhile');
  });
}

test('a Retry-After as an HTTP date is waited for until then', async (t) => {
  const defer = cleanup(t);
  const relay = await refusingServer(defer, `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${new Date(Date.now() + 300_000).toUTCString()}\r\nContent-Length: 0\r\n\r\n`);
  const harness = startClient(relay.url, { backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  await waitUntil(() => retriesOf(harness.logs).length >= 1, 'the refused dial to be logged');
  const waited = retriesOf(harness.logs)[0]!.retryInMs as number;
  // The date has a one-second resolution and the dial took a moment: within five minutes, and more than four.
  assert.ok(waited > 240_000 && waited <= 300_000, `waits until the date (${waited} ms)`);
});

test('a redirect is not followed, and where it points is logged and shown', async (t) => {
  const defer = cleanup(t);
  const relay = await refusingServer(defer, 'HTTP/1.1 301 Moved Permanently\r\nLocation: wss://relay.example.net/xrpc/com.atproto.sync.subscribeRepos\r\nContent-Length: 0\r\n\r\n');
  const harness = startClient(relay.url, { backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  await waitUntil(() => retriesOf(harness.logs).length >= 1, 'the refused dial to be logged');
  const refused = harness.logs.find((line) => line.msg === 'upstream refused the WebSocket handshake');
  assert.ok(refused, 'the refusal is logged');
  assert.equal(refused.location, 'wss://relay.example.net/xrpc/com.atproto.sync.subscribeRepos');
  assert.match(harness.client.problem ?? '', /HTTP 301 Moved Permanently; it redirects to wss:\/\/relay\.example\.net\/xrpc\/com\.atproto\.sync\.subscribeRepos, which contrail does not follow: set --upstream to it/);
});

test('a redirect to a relative Location is shown resolved against the upstream URL, its query values and credentials redacted', async (t) => {
  const defer = cleanup(t);
  // A proxy moving the path keeps the query, and with it an API key the operator put in --upstream.
  const relay = await refusingServer(defer, 'HTTP/1.1 308 Permanent Redirect\r\nLocation: /v2/subscribeRepos?apikey=SECRET\r\nContent-Length: 0\r\n\r\n');
  const harness = startClient(`${relay.url}?apikey=SECRET`, { backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  await waitUntil(() => retriesOf(harness.logs).length >= 1, 'the refused dial to be logged');
  const origin = new URL(relay.url).origin;
  const refused = harness.logs.find((line) => line.msg === 'upstream refused the WebSocket handshake');
  assert.equal(refused?.location, `${origin.replace('http:', 'ws:')}/v2/subscribeRepos?apikey=***`);
  assert.doesNotMatch(JSON.stringify(harness.logs), /SECRET/);
  assert.doesNotMatch(harness.client.problem ?? '', /SECRET/);
  assert.match(harness.client.problem ?? '', /it redirects to ws:\/\/127\.0\.0\.1:\d+\/v2\/subscribeRepos\?apikey=\*\*\*,/);
});
