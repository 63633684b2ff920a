/**
 * An empty query value is an absent one on /subscribe and on the HTTP streams, for every
 * parameter (`cursor=`, `heartbeat=`, `limit=`, `maxMessageSizeBytes=`), and so for `backfill=`:
 * no backfill, the stream served. /subscribe ignored it, but /stream and /stream.ndjson answered
 * it with a 400 'backfill=: backfill needs a WebSocket', as if a backfill had been asked. On both
 * transports.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { HttpStream } from './support/http-stream.ts';
import { ALICE, BOB, POST, Subscription, readWholeStream, settleSubscribers, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`an empty backfill= is no backfill on every v1 route, over ${transport}`, { skip }, () => {
    test('/subscribe, /stream and /stream.ndjson serve the stream as without the parameter', async (t) => {
      const defer = cleanup(t);
      const h = await startRelayGateway({ transport });
      defer(() => stopRelayGateway(h));
      h.up.create(ALICE, POST);
      h.up.create(BOB, POST);
      h.up.create(ALICE, POST);
      await h.up.settle();
      const stream = (await readWholeStream(h.gateway.port)).map((e) => e.raw);
      const query = `cursor=0&wantedDids=${ALICE}&wantedDids=${BOB}&backfill=`;

      const subscription = await Subscription.open(h.gateway.port, query);
      defer(() => subscription.close());
      await settleSubscribers(h.gateway, [subscription]);
      assert.deepEqual(subscription.texts, stream, '/subscribe');

      for (const path of ['/stream', '/stream.ndjson'] as const) {
        const opened = await HttpStream.open(h.gateway.port, path, `${query}&limit=${stream.length}`).catch((err: Error) => err);
        assert.ok(opened instanceof HttpStream, `${path}: ${opened instanceof Error ? opened.message : ''}`);
        await opened.ended;
        assert.deepEqual(opened.events, stream, path);
      }
    });
  });
}
