/**
 * A frame dropped whole is a gap in the stream: its events are lost. Its log line must name its seq
 * when its first bytes carry one, as the skip of a frame too large for the socket does (README, the
 * upstream connection), so an operator can tell which seq is missing. A frame over --max-frame-bytes
 * (read whole, then dropped) or one that does not decode past its seq was logged with its size only.
 */
import assert from 'node:assert/strict';
import * as dagCbor from '@ipld/dag-cbor';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { waitUntil } from './support/poll.ts';
import { alicePostCommit } from './support/subscribe-client.ts';
import { seqsOf, startClient } from './support/upstream-harness.ts';

test('a frame dropped whole is logged with its seq, when its first bytes carry one', async (t) => {
  const defer = cleanup(t);
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const harness = startClient(relay.url, { maxFrameBytes: 4_096 });
  defer(() => harness.client.stop());
  await waitUntil(() => harness.client.connected, 'the client to connect');
  relay.push({ seq: 1, bytes: alicePostCommit(1) });
  relay.push({ seq: 2, bytes: alicePostCommit(2, { text: 'x'.repeat(8_000) }) }); // over --max-frame-bytes
  // A #commit body that stops after its seq: it does not decode.
  const header = dagCbor.encode({ op: 1, t: '#commit' });
  const body = Buffer.from(dagCbor.encode({ seq: 3 }));
  body[0] = 0xa5; // a map of 5 entries, of which 1 is there
  relay.push({ seq: 3, bytes: Buffer.concat([header, body]) });
  relay.push({ seq: 4, bytes: alicePostCommit(4) });
  await waitUntil(() => seqsOf(harness.messages).includes(4), 'seq 4, after the dropped frames');
  const drops = harness.logs.filter((line) => line.msg === 'dropped upstream input');
  assert.deepEqual(
    drops.map((line) => [line.reason, line.seq]),
    [
      ['oversized', 2],
      ['truncated', 3],
    ],
  );
});
