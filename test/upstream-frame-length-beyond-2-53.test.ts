/**
 * A frame too large for the socket closes it, and contrail resumes after that frame's seq, read
 * from its first bytes: a reconnect at the same cursor would meet it again, for good (README, the
 * upstream connection). A frame header may announce up to 2^64 - 1 bytes; past 2^53 - 1 the
 * WebSocket client refuses it with an error of its own (WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH,
 * not the message-size one), which was taken for any socket error: contrail dialled again at the
 * same cursor, met the same frame, and never got past it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess } from './support/contrail-process.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, POST, httpGet, recordFor, stats } from './support/subscribe-client.ts';

const commit = (seq: number) => commitFrame({ seq, repo: ALICE, rev: tidFor(seq * 10), ops: [{ action: 'create', path: `${POST}/${tidFor(seq)}`, record: recordFor(POST, seq, ALICE) }] });

/** A binary frame's header announcing 2^60 bytes, then the first bytes of the #commit of `seq` as its payload begins. */
function endlessFrameStart(seq: number): Buffer {
  const header = Buffer.alloc(10);
  header[0] = 0x82; // FIN, binary
  header[1] = 127; // 64-bit length follows
  header.writeBigUInt64BE(2n ** 60n, 2);
  return Buffer.concat([header, commit(seq)]);
}

test('a frame whose header announces more than 2^53 bytes is skipped like any frame too large for the socket: contrail resumes after its seq', async (t) => {
  const defer = cleanup(t);
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  const cursors: Array<string | null> = [];
  server.on('connection', (socket: WebSocket & { _socket?: import('node:net').Socket }, request) => {
    const cursor = new URL(request.url!, 'http://relay').searchParams.get('cursor');
    cursors.push(cursor);
    socket.on('error', () => socket.terminate());
    if (cursor === null) socket.send(commit(1));
    if (cursor === null || Number(cursor) < 2) {
      // Written beside ws, as a relay gone wrong would: the frame never ends.
      setImmediate(() => socket._socket!.write(endlessFrameStart(2)));
    } else {
      socket.send(commit(3));
    }
  });
  const dir = tempDir();
  defer(() => dir.remove());
  const contrail = ContrailProcess.serve(['--upstream', `ws://127.0.0.1:${(server.address() as { port: number }).port}`, '--data-dir', dir.path]);
  defer(() => contrail.stop());
  const port = await contrail.waitServing();
  await waitUntil(async () => (await stats(port)).upstreamCursor?.seq === 3 || cursors.length >= 4, 'seq 3, after the frame, to be stored (or contrail to dial again and again)', 60_000);
  assert.deepEqual(cursors, [null, '2'], 'contrail dials once more, after the frame');
  assert.equal((await stats(port)).upstreamCursor?.seq, 3);
  const metricsPort = (await contrail.waitForLog((line) => line.msg === 'serving Prometheus metrics at /metrics')).port as number;
  const metrics = (await httpGet(metricsPort, '/metrics')).body.toString();
  assert.match(metrics, /^contrail_upstream_disconnects_total\{reason="oversized_frame"\} 1$/m);
  assert.match(metrics, /^contrail_ingest_drops_total\{reason="oversized"\} 1$/m);
  assert.ok(contrail.logs.some((line) => /^SKIPPED UPSTREAM FRAME seq 2/.test(line.msg)), 'the skip is logged as an error');
});
