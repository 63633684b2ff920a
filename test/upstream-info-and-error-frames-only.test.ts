/**
 * /ready says "connected" only for an upstream whose frames are being stored. A relay that stays
 * connected and sends only #info frames, or error frames without closing, stores nothing while it
 * looks alive: after a while of such frames with none kept, /ready must fail saying so (as for a
 * relay whose every frame is dropped, README, the upstream connection), and a frame kept makes it
 * ready again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorFrame, infoFrame } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { alicePostCommit, httpGet, withGateway } from './support/subscribe-client.ts';

for (const { kind, frame, last } of [
  { kind: 'info', frame: infoFrame('OutdatedCursor', 'Requested cursor exceeded limit. Possibly missing events'), last: '#info OutdatedCursor' },
  { kind: 'error', frame: errorFrame('ConsumerTooSlow', 'slow down'), last: 'error ConsumerTooSlow' },
]) {
  test(`a relay that stays connected sending only ${kind} frames fails /ready with the reason, and a commit makes it ready again`, async () => {
    await withGateway({}, { nothingKeptMs: 1_000 }, async ({ relay, gateway }) => {
      await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once connected');
      let ready = await httpGet(gateway.port, '/ready');
      await waitUntil(
        async () => {
          relay.push({ bytes: frame });
          ready = await httpGet(gateway.port, '/ready');
          return ready.status === 503;
        },
        `/ready to fail while the relay sends only ${kind} frames`,
        15_000,
      );
      assert.match(ready.body.toString(), new RegExp(`was an #info or error frame \\(last: ${last}\\): none is stored`));
      assert.equal(relay.connections, 1, 'the relay is still connected');
      relay.push({ seq: 1, bytes: alicePostCommit(1) });
      await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once a commit is kept');
    });
  });
}
