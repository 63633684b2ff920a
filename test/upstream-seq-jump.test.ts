/**
 * One upstream frame with a seq far ahead of the stream (a buggy or hostile relay, a relay that
 * restarted its numbering without closing the connection) makes every later frame on that
 * connection come at or below the newest stored seq, each dropped as already stored. That must
 * not go unsaid: `/ready` fails with the reason once it has lasted, and recovers when a frame
 * above the stored seq comes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commitFrame, tidFor } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, BOB, POST, httpGet, recordFor, stats, withGateway } from './support/subscribe-client.ts';

test('a frame whose seq jumps far ahead does not silently stop ingest of the frames after it', async () => {
  await withGateway({}, { seqsBehindMs: 1_000 }, async ({ up, relay, gateway }) => {
    for (let i = 0; i < 5; i++) up.create(ALICE, POST);
    await up.settle();
    const before = (await stats(gateway.port)).eventCount;
    const jump = 900_000_000_000;
    const jumpFrame = (seq: number, n: number) =>
      relay.push({ seq, bytes: commitFrame({ seq, repo: BOB, rev: tidFor(seq), ops: [{ action: 'create', path: `${POST}/${tidFor(n)}`, record: recordFor(POST, n, BOB) }] }) });
    jumpFrame(jump, 1);
    let ready = await httpGet(gateway.port, '/ready');
    let stored = 0;
    await waitUntil(
      async () => {
        up.create(ALICE, POST);
        await new Promise((resolve) => setTimeout(resolve, 100));
        ready = await httpGet(gateway.port, '/ready');
        stored = (await stats(gateway.port)).eventCount - before;
        return ready.status !== 200 || stored >= 51;
      },
      'the stream to be stored or /ready to say it is not',
      30_000,
    );
    assert.ok(
      stored >= 51 || ready.status !== 200,
      `after the jump ${stored} events were stored, and /ready answers ${ready.status} ${JSON.stringify(ready.body.toString().trim())}: the stream is dropped while the gateway says it is fine`,
    );
    assert.match(ready.body.toString(), /at or below seq 900000000000/, '/ready names the seq the frames fall below');

    jumpFrame(jump + 1, 2);
    await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready to recover once a frame above the stored seq is stored');
  });
});
