/**
 * A frame too large for the socket is skipped by resuming after its seq, read from its first bytes
 * (README, the upstream connection). Its header may reach contrail alone, in a read of its own (a
 * proxy forwarding what it gets as it gets it, a relay that writes the header before the payload):
 * the seq comes in a later read. The WebSocket client refused the frame on its header and closed the
 * connection, and a relay answers that close by closing too, so the payload never came, the skip
 * could not name the seq, and contrail dialled again at the same cursor and met the same frame.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { frameHeader, OVERSIZED_LENGTH, startOversizedFrameRelay } from './support/oversized-frame-relay.ts';
import { waitUntil } from './support/poll.ts';
import { alicePostCommit } from './support/subscribe-client.ts';
import { metricValue, seqsOf, startClient } from './support/upstream-harness.ts';

test('a frame too large for the socket whose header arrives in a read of its own is skipped after its seq', async (t) => {
  const defer = cleanup(t);
  // Written beside ws, as a relay gone wrong would: the header, and a moment later the payload's first bytes.
  const relay = await startOversizedFrameRelay((raw, socket) => {
    setTimeout(() => raw.write(frameHeader(OVERSIZED_LENGTH)), 50);
    setTimeout(() => socket.readyState === socket.OPEN && raw.write(alicePostCommit(2)), 300);
  });
  defer(() => relay.close());
  const { cursors } = relay;
  const url = `${relay.url}/xrpc/com.atproto.sync.subscribeRepos`;
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
