/**
 * A frame too large for the socket is skipped by resuming after its seq; that skip must not outlive
 * a relay reset. After FutureCursor the consumer asks to start live, and the next dial carries no
 * cursor, whether the consumer had already stored past the skipped seq or the skipped frame was the
 * newest one the relay sent before it was reset. Then the reset relay's frames are read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dagCbor from '@ipld/dag-cbor';
import { SOCKET_MAX_PAYLOAD } from '../src/upstream/firehose.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { metricValue, seqsOf, startIngestRig } from './support/upstream-harness.ts';

for (const skippedIsNewest of [false, true]) {
  const when = skippedIsNewest ? 'the skipped frame was the newest before the reset' : 'frames after the skipped one were stored';
  test(`after an oversized frame was skipped, a relay reset (FutureCursor) lets the client start live (${when})`, async (t) => {
    const { relay, ingest, harness, registry } = await startIngestRig(t);
    const post = (seq: number) => ({ action: 'create' as const, path: `app.bsky.feed.post/${tidFor(seq)}`, record: { $type: 'app.bsky.feed.post', text: `post ${seq}`, createdAt: '2026-11-25T12:00:00.000Z' } });
    await relay.waitForConnections(1);
    await waitUntil(() => harness.client.connected, 'the client to connect');

    // seq 2 is too large for the socket: skipped, the client resumes after it.
    const huge = Buffer.concat([
      dagCbor.encode({ op: 1, t: '#commit' }),
      dagCbor.encode({ ops: [], rev: tidFor(20), seq: 2, repo: `did:plc:${'h'.repeat(24)}`, time: new Date().toISOString(), blobs: [], blocks: new Uint8Array(SOCKET_MAX_PAYLOAD + 1024), since: null, commit: null, rebase: false, tooBig: true }),
    ]);
    relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:abc', rev: tidFor(1), ops: [post(1)] }) });
    relay.push({ seq: 2, bytes: huge });
    if (!skippedIsNewest) relay.push({ seq: 3, bytes: commitFrame({ seq: 3, repo: 'did:plc:abc', rev: tidFor(3), ops: [post(3)] }) });
    const stored = skippedIsNewest ? 1 : 3;
    await waitUntil(() => ingest.store.upstreamCursor?.seq === stored && relay.cursors.length === 2 && harness.client.connected, `seq ${stored} to be stored and the dial after the skip`, 60_000);
    assert.deepEqual(relay.cursors, [undefined, 2]);

    // The relay is reset: its history is gone and its seqs start again from 1.
    relay.frames.length = 0;
    relay.dropClients();
    await waitUntil(async () => (await metricValue(registry, 'contrail_upstream_error_frames_total', { error: 'FutureCursor' })) >= 1, 'the FutureCursor answer');
    // Give the client a few redials: after FutureCursor it must dial without a cursor (start live).
    await waitUntil(() => relay.cursors.length >= 5 || (harness.client.connected && relay.connections === 1), 'a redial after FutureCursor', 10_000);
    const afterReset = relay.cursors.slice(2);
    assert.equal(afterReset[0], Math.max(stored, 2), 'the first dial after the reset resumes where it was (and meets FutureCursor)');
    assert.equal(afterReset[1], undefined, `after FutureCursor the client starts live; it dialled with cursors ${JSON.stringify(afterReset)}`);

    await waitUntil(() => harness.client.connected, 'the client to be connected to the reset relay', 10_000);
    relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:xyz', rev: tidFor(101), ops: [post(101)] }) });
    const before = skippedIsNewest ? [1] : [1, 3];
    await waitUntil(() => seqsOf(harness.messages).length === before.length + 1, 'the reset relay’s first frame to arrive', 10_000);
    assert.deepEqual(seqsOf(harness.messages), [...before, 1]);
  });
}
