/**
 * contrail reads the relay's socket beside ws to know which message is in progress (a message begun
 * must end within the message timeout) and the first bytes of one too large for the socket
 * (message-prefix.ts). A relay that answers the handshake and sends its first frames at once (a
 * backlog after a cursor) may have them reach contrail in the same read as the 101. Node's HTTP
 * client hands the bytes after the 101 to ws, which puts them back on the socket, so they came to
 * that reader a second time: it lost track of where frames begin, took bytes inside a frame for a
 * frame header, and judged a message unfinished that was not.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { infoFrame } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { metricValue, startClient } from './support/upstream-harness.ts';

/** How much of the second frame's payload comes with the 101. */
const FIRST_PART = 10;

test('frames that arrive in the same read as the 101 are read once: a relay answering every ping is not dropped for an unfinished message', async (t) => {
  const defer = cleanup(t);
  const first = infoFrame('First');
  assert.ok(first.length < 126); // a 2-byte header
  const firstOnTheWire = 2 + first.length;
  // The bytes read twice would end FIRST_PART + firstOnTheWire + 4 bytes before the second frame's
  // end, and be taken for a frame header there: place one of a fragment that never ends.
  const readTwice = FIRST_PART + firstOnTheWire + 4;
  const second = infoFrame('Second', `${'x'.repeat(300)}\x02~\x7f\x7f${'y'.repeat(readTwice - 4)}`);
  const secondHeader = Buffer.from([0x82, 126, second.length >> 8, second.length & 0xff]);

  // Pongs are sent by hand, once the second frame is whole: ws's own would go out inside it.
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  // Held until the first frames are written (beside ws, in order), so the 101 and they go out in one write.
  server.on('headers', (_headers, request: IncomingMessage) => request.socket.cork());
  let pongs = 0;
  server.on('connection', (socket: WebSocket & { _socket?: Socket }) => {
    const raw = socket._socket!;
    socket.on('error', () => socket.terminate());
    raw.write(Buffer.concat([Buffer.from([0x82, first.length]), first, secondHeader, second.subarray(0, FIRST_PART)]));
    process.nextTick(() => raw.uncork());
    let secondWhole = false;
    let unanswered = 0;
    const pong = () => {
      pongs++;
      socket.pong();
    };
    socket.on('ping', () => (secondWhole ? pong() : unanswered++));
    // The rest in a read of its own.
    setTimeout(() => {
      raw.write(second.subarray(FIRST_PART));
      secondWhole = true;
      for (; unanswered > 0; unanswered--) pong();
    }, 30);
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { pingIntervalMs: 200, messageTimeoutMs: 600 });
  defer(() => harness.client.stop());

  await waitUntil(async () => pongs >= 20 || (await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'message_timeout' })) > 0, '20 pings answered (or a message_timeout)', 30_000);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'message_timeout' }), 0, 'no message judged unfinished');
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_connects_total'), 1);
  assert.deepEqual(
    harness.messages.map((message) => message.type === 'info' && message.name),
    ['First', 'Second'],
  );
});
