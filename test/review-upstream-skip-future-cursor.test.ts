/**
 * Review test (fails on main): FirehoseClient's #skipThrough (the seq of a frame too large for
 * the socket) is never cleared. After the relay is reset (FutureCursor), the consumer asks to
 * start live (resumeCursor() undefined), but #connect() still dials with cursor=<skipThrough>
 * because `(consumerCursor ?? -1) < skipThrough`: against a relay whose seqs start again below
 * it, every dial is answered FutureCursor and closed — the gateway never reads again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dagCbor from '@ipld/dag-cbor';
import { SOCKET_MAX_PAYLOAD } from '../src/upstream/firehose.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { metricValue, openIngester, seqsOf, startClient } from './support/upstream-harness.ts';
import { Registry } from 'prom-client';

test('after an oversized frame was skipped, a relay reset (FutureCursor) still lets the client start live', async (t) => {
  const relay = await FakeRelay.start();
  const dir = tempDir();
  const registry = new Registry();
  const ingest = openIngester(dir.path, relay.url, { registry });
  const harness = startClient(relay.url, {
    registry,
    metrics: ingest.upstreamMetrics,
    drops: ingest.drops,
    resumeCursor: () => ingest.ingester.resumeCursor(),
    onMessage: (message) => ingest.ingester.handle(message),
    backoffBaseMs: 10,
    backoffMaxMs: 50,
  });
  t.after(async () => {
    await harness.client.stop();
    await ingest.close();
    await relay.stop();
    dir.remove();
  });
  const post = (seq: number) => ({ action: 'create' as const, path: `app.bsky.feed.post/${tidFor(seq)}`, record: { $type: 'app.bsky.feed.post', text: `post ${seq}`, createdAt: '2026-11-25T12:00:00.000Z' } });
  await relay.waitForConnections(1);
  await waitUntil(() => harness.client.connected, 'the client to connect');

  // seq 2 is too large for the socket: skipped, the client resumes after it (as on main).
  const huge = Buffer.concat([
    dagCbor.encode({ op: 1, t: '#commit' }),
    dagCbor.encode({ ops: [], rev: tidFor(20), seq: 2, repo: `did:plc:${'h'.repeat(24)}`, time: new Date().toISOString(), blobs: [], blocks: new Uint8Array(SOCKET_MAX_PAYLOAD + 1024), since: null, commit: null, rebase: false, tooBig: true }),
  ]);
  relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:abc', rev: tidFor(1), ops: [post(1)] }) });
  relay.push({ seq: 2, bytes: huge });
  relay.push({ seq: 3, bytes: commitFrame({ seq: 3, repo: 'did:plc:abc', rev: tidFor(3), ops: [post(3)] }) });
  await waitUntil(() => ingest.store.upstreamCursor?.seq === 3, 'seq 3 to be stored', 60_000);
  assert.deepEqual(relay.cursors, [undefined, 2]);

  // The relay is reset: its history is gone and its seqs start again from 1.
  relay.frames.length = 0;
  relay.dropClients();
  await waitUntil(async () => (await metricValue(registry, 'contrail_upstream_error_frames_total', { error: 'FutureCursor' })) >= 1, 'the FutureCursor answer');
  // Give the client a few redials: after FutureCursor it must dial without a cursor (start live).
  await waitUntil(() => relay.cursors.length >= 5 || (harness.client.connected && relay.connections === 1), 'a redial after FutureCursor', 10_000);
  const afterReset = relay.cursors.slice(2);
  assert.equal(afterReset[0], 3, 'the first dial after the reset resumes after seq 3 (and meets FutureCursor)');
  assert.equal(afterReset[1], undefined, `after FutureCursor the client starts live; it dialled with cursors ${JSON.stringify(afterReset)}`);

  await waitUntil(() => harness.client.connected, 'the client to be connected to the reset relay', 10_000);
  relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:xyz', rev: tidFor(101), ops: [post(101)] }) });
  await waitUntil(() => seqsOf(harness.messages).length === 3, 'the reset relay’s first frame to arrive', 10_000);
});
