/**
 * A frame too large for the socket is skipped by resuming after its seq, read from its first bytes
 * (README, the upstream connection). Its header may reach contrail alone, in a read of its own (a
 * proxy forwarding what it gets as it gets it, a relay that writes the header before the payload):
 * the seq comes in a later read. The WebSocket client refused the frame on its header and closed the
 * connection, and a relay answers that close by closing too, so the payload never came, the skip
 * could not name the seq, and contrail dialled again at the same cursor and met the same frame.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { SOCKET_MAX_PAYLOAD } from '../src/upstream/firehose.ts';
import { cleanup } from './support/cleanup.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, POST, recordFor } from './support/subscribe-client.ts';
import { metricValue, seqsOf, startClient } from './support/upstream-harness.ts';

const commit = (seq: number) => commitFrame({ seq, repo: ALICE, rev: tidFor(seq * 10), ops: [{ action: 'create', path: `${POST}/${tidFor(seq)}`, record: recordFor(POST, seq, ALICE) }] });

/** A binary frame's header announcing more than the socket reads. */
function oversizedHeader(): Buffer {
  const header = Buffer.alloc(10);
  header[0] = 0x82; // FIN, binary
  header[1] = 127; // 64-bit length follows
  header.writeBigUInt64BE(BigInt(SOCKET_MAX_PAYLOAD + 1024), 2);
  return header;
}

test('a frame too large for the socket whose header arrives in a read of its own is skipped after its seq', async (t) => {
  const defer = cleanup(t);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  const cursors: Array<string | null> = [];
  server.on('connection', (socket: WebSocket & { _socket?: Socket }, request) => {
    const cursor = new URL(request.url!, 'http://relay').searchParams.get('cursor');
    cursors.push(cursor);
    socket.on('error', () => socket.terminate());
    if (cursor !== null && Number(cursor) >= 2) {
      socket.send(commit(3));
      return;
    }
    if (cursor === null) socket.send(commit(1));
    // Written beside ws, as a relay gone wrong would: the header, and a moment later the payload's first bytes.
    setTimeout(() => socket._socket!.write(oversizedHeader()), 50);
    setTimeout(() => socket.readyState === socket.OPEN && socket._socket!.write(commit(2)), 300);
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  // The consumer's cursor: the last seq it was handed.
  const read: number[] = [];
  const harness = startClient(url, { backoffBaseMs: 10, backoffMaxMs: 50, resumeCursor: () => read.at(-1), onMessage: (message) => 'seq' in message && read.push(message.seq) });
  defer(() => harness.client.stop());

  await waitUntil(() => seqsOf(harness.messages).includes(3) || cursors.length >= 4, 'seq 3, after the frame, to be read (or contrail to dial again and again)', 20_000);
  assert.deepEqual(cursors, [null, '2'], 'contrail dials once more, after the frame');
  assert.deepEqual(seqsOf(harness.messages), [1, 3]);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'oversized_frame' }), 1);
  assert.equal(await metricValue(harness.registry, 'contrail_ingest_drops_total', { reason: 'oversized' }), 1);
  assert.ok(harness.logs.some((line) => line.level === 50 && /^SKIPPED UPSTREAM FRAME seq 2:/.test(line.msg)), 'the skip names the seq');
});
