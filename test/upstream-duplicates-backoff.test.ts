/**
 * A connection resets the reconnect backoff once it delivered progress. A frame whose seq is at or
 * below the cursor it was dialled with (or a seq it already read) is one contrail already has: it
 * is dropped as already taken and is no progress. A relay that replays the same window after every
 * connect and then closes must meet a growing backoff, not a redial every half second for good.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { waitUntil } from './support/poll.ts';
import { alicePostCommit } from './support/subscribe-client.ts';
import { seqsOf, startClient } from './support/upstream-harness.ts';

test('a relay that sends only frames already read, then closes, meets a growing backoff', async (t) => {
  const defer = cleanup(t);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  // Whatever the cursor, the same window: seqs 1 to 3, then a close.
  server.on('connection', (socket) => {
    for (const seq of [1, 2, 3]) socket.send(alicePostCommit(seq));
    socket.close();
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { resumeCursor: () => 3, backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  const retries = () => harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  await waitUntil(() => retries().length >= 5, 'five connections that replayed seqs 1 to 3 and closed');
  assert.deepEqual(seqsOf(harness.messages).slice(0, 3), [1, 2, 3], 'the replayed frames were read (and handed on, for the consumer to drop)');
  assert.deepEqual(retries().slice(0, 5).map((line) => line.failures), [1, 2, 3, 4, 5]);
});

test('a connection that delivers a frame above its cursor resets the backoff', async (t) => {
  const defer = cleanup(t);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  let connections = 0;
  // The first two connections replay seqs 1 to 3 only; the third brings seq 4 too.
  server.on('connection', (socket) => {
    connections++;
    for (const seq of connections >= 3 ? [1, 2, 3, 4] : [1, 2, 3]) socket.send(alicePostCommit(seq));
    socket.close();
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { resumeCursor: () => 3, backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  const retries = () => harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  await waitUntil(() => retries().length >= 3, 'three connections');
  assert.deepEqual(retries().slice(0, 3).map((line) => line.failures), [1, 2, 0]);
});
