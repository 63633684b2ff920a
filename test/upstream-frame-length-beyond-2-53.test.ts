/**
 * A frame too large for the socket closes it, and contrail resumes after that frame's seq, read
 * from its first bytes: a reconnect at the same cursor would meet it again, for good (README, the
 * upstream connection). A frame header may announce up to 2^64 - 1 bytes; past 2^53 - 1 the
 * WebSocket client refuses it with an error of its own (WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH,
 * not the message-size one), which was taken for any socket error: contrail dialled again at the
 * same cursor, met the same frame, and never got past it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';
import { frameHeader, startOversizedFrameRelay } from './support/oversized-frame-relay.ts';
import { waitUntil } from './support/poll.ts';
import { alicePostCommit, httpGet, stats } from './support/subscribe-client.ts';

test('a frame whose header announces more than 2^53 bytes is skipped like any frame too large for the socket: contrail resumes after its seq', async (t) => {
  const defer = cleanup(t);
  // Written beside ws, as a relay gone wrong would: a header announcing 2^60 bytes, then the #commit of seq 2 as its payload begins; the frame never ends.
  const relay = await startOversizedFrameRelay((raw) => setImmediate(() => raw.write(Buffer.concat([frameHeader(2n ** 60n), alicePostCommit(2)]))));
  defer(() => relay.close());
  const { cursors } = relay;
  const dir = tempDir();
  defer(() => dir.remove());
  const contrail = ContrailProcess.serve(['--upstream', relay.url, '--data-dir', dir.path]);
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
