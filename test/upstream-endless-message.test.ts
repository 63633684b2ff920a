/**
 * A relay can keep a connection looking alive while it delivers nothing: one binary message sent
 * as endless 1-byte fragments never completes, and the pongs it sends between fragments answer
 * every ping. A message must complete within a bound of reading time, or the connection is
 * dropped, logged with the reason, counted, and dialled again; such a connection is a failure for
 * the backoff however long it lived and however well it answered pings.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { waitUntil } from './support/poll.ts';
import { metricValue, startClient } from './support/upstream-harness.ts';

/** An unmasked server frame of one payload byte: the first of a binary message, or a continuation; never the last. */
function fragment(first: boolean): Buffer {
  return Buffer.from([first ? 0x02 : 0x00, 1, 0xa2]);
}

test('a message sent as endless fragments is cut after the bound, and the relay dialled again', async (t) => {
  const defer = cleanup(t);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  const timers = new Set<NodeJS.Timeout>();
  defer(() => timers.forEach((timer) => clearInterval(timer)));
  let connections = 0;
  server.on('connection', (socket: WebSocket & { _socket?: Socket }) => {
    connections++;
    socket.on('error', () => socket.terminate());
    // Written beside ws, as a relay gone wrong would; ws still answers every ping between fragments.
    socket._socket!.write(fragment(true));
    const drip = setInterval(() => socket._socket!.write(fragment(false)), 5);
    timers.add(drip);
    socket.on('close', () => clearInterval(drip));
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { pingIntervalMs: 50, messageTimeoutMs: 300, healthyAfterMs: 5, backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  const cuts = () => harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  await waitUntil(() => cuts().length >= 2, 'two connections to be dropped while their message never completes', 10_000);
  assert.deepEqual(cuts().slice(0, 2).map((line) => [line.cause, line.failures]), [['message_timeout', 1], ['message_timeout', 2]]);
  const told = harness.logs.find((line) => /did not complete a message/.test(line.msg));
  assert.ok(told, 'the drop is logged with its reason');
  assert.equal(told.messageTimeoutMs, 300);
  assert.ok(told.bytes as number > 0, 'the log says how much of the message came');
  assert.ok(connections >= 2, 'the relay was dialled again');
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'message_timeout' }) >= 1, true);
  assert.equal(harness.messages.length, 0);
});
