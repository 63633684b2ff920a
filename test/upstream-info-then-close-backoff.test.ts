/**
 * A connection resets the reconnect backoff once it delivered a message: the relay made progress.
 * An #info frame is none (a relay sends OutdatedCursor as it opens, before any event), no more than
 * an error frame is: an upstream that answers every connect with an #info and a close must meet a
 * growing backoff, not a redial every half second for good.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { infoFrame } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { startClient } from './support/upstream-harness.ts';

test('an upstream that answers every connect with an #info frame and a close meets a growing backoff', async (t) => {
  const defer = cleanup(t);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  server.on('connection', (socket) => {
    socket.send(infoFrame('OutdatedCursor', 'Requested cursor exceeded limit. Possibly missing events'));
    socket.close();
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  const retries = () => harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  await waitUntil(() => retries().length >= 5, 'five connections answered with #info and a close');
  assert.ok(harness.messages.filter((m) => m.type === 'info').length >= 5, 'the #info frames were handed on');
  assert.deepEqual(retries().slice(0, 5).map((line) => line.failures), [1, 2, 3, 4, 5]);
});
