/**
 * An HTTP server may send 1xx informational responses (100 Continue, 103 Early Hints) before the
 * 101 that upgrades a connection; Node's HTTP client, and so ws, reads past them. contrail reads
 * the same socket beside ws to find the first bytes (and seq) of a frame too large for the socket
 * (message-prefix.ts): it must read past them too, and take the frames that follow the 101 for
 * frames, or it cannot tell which frame to resume after.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { oversizedFrameStart } from './support/oversized-frame-relay.ts';
import { waitUntil } from './support/poll.ts';
import { alicePostCommit } from './support/subscribe-client.ts';
import { seqsOf, startClient } from './support/upstream-harness.ts';

for (const informational of ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n']) {
  test(`after a ${informational.slice(9, informational.indexOf('\r'))} before the 101, a frame too large for the socket is still moved past by its seq`, async (t) => {
    const defer = cleanup(t);
    const sockets = new WebSocketServer({ noServer: true });
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    defer(() => new Promise((resolve) => server.close(resolve)));
    defer(() => sockets.clients.forEach((socket) => socket.terminate()));
    const cursors: Array<string | null> = [];
    server.on('upgrade', (request, socket: Socket, head) => {
      const cursor = new URL(request.url!, 'http://relay').searchParams.get('cursor');
      cursors.push(cursor);
      socket.write(informational);
      sockets.handleUpgrade(request, socket, head, (ws) => {
        ws.on('error', () => ws.terminate());
        if (cursor === null) ws.send(alicePostCommit(1));
        if (cursor === null || Number(cursor) < 2) {
          // Written beside ws, after what it sent, as a relay would send a frame this large: it never ends.
          ws.ping(undefined, undefined, () => socket.write(oversizedFrameStart(2)));
        } else {
          ws.send(alicePostCommit(3));
        }
      });
    });
    const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
    let cursor: number | undefined;
    const harness = startClient(url, { resumeCursor: () => cursor, onMessage: (message) => void ('seq' in message && (cursor = message.seq)), backoffBaseMs: 1, backoffMaxMs: 8 });
    defer(() => harness.client.stop());
    await waitUntil(() => seqsOf(harness.messages).includes(3) || cursors.length >= 4, 'seq 3, after the oversized frame (or contrail to dial again and again)');
    assert.deepEqual(cursors, [null, '2'], 'the reconnect resumes after the oversized frame');
    assert.deepEqual(seqsOf(harness.messages), [1, 3]);
    assert.ok(harness.logs.some((line) => /^SKIPPED UPSTREAM FRAME seq 2/.test(line.msg)), 'the skip is logged by its seq');
  });
}

/** An unmasked binary frame of `payload` (under 64 KiB), as a server sends it. */
function binaryFrame(payload: Uint8Array): Buffer {
  const header = Buffer.from([0x82, 126, 0, 0]);
  header.writeUInt16BE(payload.length, 2);
  return Buffer.concat([header, payload]);
}

test('a 103 and the 101 arriving a byte at a time, split anywhere, are read past all the same', async (t) => {
  const defer = cleanup(t);
  const cursors: Array<string | null> = [];
  const server = createTcpServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    let request = '';
    socket.on('data', (chunk) => {
      if (request.includes('\r\n\r\n')) return; // the handshake is answered; what follows is frames
      request += chunk.toString('latin1');
      if (!request.includes('\r\n\r\n')) return;
      const cursor = new URL(/^GET (\S+)/.exec(request)![1]!, 'http://relay').searchParams.get('cursor');
      const key = /^sec-websocket-key: *(\S+)/im.exec(request)![1]!;
      cursors.push(cursor);
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const response = Buffer.concat([
        Buffer.from('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n', 'latin1'),
        Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`, 'latin1'),
        binaryFrame(alicePostCommit(cursor === null ? 1 : 3)),
      ]);
      // One byte per write, each on a turn of its own: the reader meets every split there is. The
      // oversized frame's header and first bytes come in one write, as a relay writes them: ws
      // closes the socket at its header, and its seq is read from what came with it.
      let at = 0;
      const next = () => {
        if (socket.destroyed) return;
        if (at < response.length) socket.write(response.subarray(at, ++at), () => setImmediate(next));
        else if (cursor === null) socket.write(oversizedFrameStart(2));
      };
      next();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  let cursor: number | undefined;
  const harness = startClient(url, { resumeCursor: () => cursor, onMessage: (message) => void ('seq' in message && (cursor = message.seq)), backoffBaseMs: 1, backoffMaxMs: 8 });
  defer(() => harness.client.stop());
  await waitUntil(() => seqsOf(harness.messages).includes(3) || cursors.length >= 4, 'seq 3, after the oversized frame (or contrail to dial again and again)', 60_000);
  assert.deepEqual(cursors, [null, '2'], 'the reconnect resumes after the oversized frame');
  assert.deepEqual(seqsOf(harness.messages), [1, 3]);
});
