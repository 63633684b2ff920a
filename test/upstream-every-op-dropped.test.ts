/**
 * /ready says "connected" only for an upstream whose frames are being stored. A relay whose every
 * commit has every op dropped (each record failing the CID its op names, here) stores nothing while
 * every frame decodes: after a while with nothing kept, /ready must fail with the reason, and a
 * commit with an op kept makes it ready again.
 */
import assert from 'node:assert/strict';
import * as dagCbor from '@ipld/dag-cbor';
import { test } from 'node:test';
import { cborBlock, commitFrame, tidFor } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, POST, alicePostCommit, httpGet, recordFor, withGateway } from './support/subscribe-client.ts';

/** A #commit whose one op's block, in the CAR under the CID the op names, holds other bytes: the op is dropped (cid_mismatch). */
function forgedCommit(seq: number): Uint8Array {
  const record = recordFor(POST, seq, ALICE);
  return commitFrame({
    seq,
    repo: ALICE,
    rev: tidFor(seq * 10),
    ops: [{ action: 'create', path: `${POST}/${tidFor(seq)}`, record }],
    omitRecords: true,
    extraBlocks: [{ cid: cborBlock(record).cid, bytes: dagCbor.encode({ ...record, text: 'forged' }) }],
  });
}

test('a relay whose every commit has every op dropped fails /ready with the reason, and a kept op makes it ready again', async () => {
  await withGateway({}, { nothingKeptMs: 1_000 }, async ({ relay, gateway }) => {
    await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once connected');
    let seq = 0;
    let ready = await httpGet(gateway.port, '/ready');
    await waitUntil(
      async () => {
        seq++;
        relay.push({ seq, bytes: forgedCommit(seq) });
        ready = await httpGet(gateway.port, '/ready');
        return ready.status === 503;
      },
      '/ready to fail while every op of every commit is dropped',
      15_000,
    );
    assert.match(ready.body.toString(), /had every op dropped, or was an #info or error frame \(last: cid_mismatch\): none is stored/);
    seq++;
    relay.push({ seq, bytes: alicePostCommit(seq) });
    await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once an op is kept');
  });
});
