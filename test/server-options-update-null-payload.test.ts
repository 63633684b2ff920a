/**
 * Jetstream v1 reads an options_update's payload as a json.RawMessage, then decodes it into its
 * options struct: a `"payload": null` is the raw `null`, which Go decodes into a struct as nothing
 * at all, so the update is an empty one — every collection, every DID — and the size limit stays
 * (v1's update never changes it). Under requireHello it is the hello. contrail closed the
 * connection with 1008 'payload must be an object'. On both transports.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import {
  ALICE,
  FOLLOW,
  Subscription,
  queryFor,
  settleSubscribers,
  startGatewayWithStream,
  wants,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`an options_update with "payload": null, over ${transport}`, { skip }, () => {
    test('clears the filters as an empty payload does, keeps the size limit, and is a hello', async (t) => {
      const defer = cleanup(t);
      const { h, stream } = await startGatewayWithStream(defer, transport);
      const largest = Math.max(...stream.map((e) => Buffer.byteLength(e.raw)));

      const connectFilter = { wantedCollections: [FOLLOW], wantedDids: [ALICE], maxMessageSizeBytes: largest - 1 };
      const subscription = await Subscription.open(h.gateway.port, queryFor(connectFilter, { cursor: 0, requireHello: 'true' }));
      defer(() => subscription.close());
      subscription.send('{"type":"options_update","payload":null}');
      const answer = await Promise.race([subscription.roundTrip().then(() => 'still open'), subscription.closed.then(({ code, reason }) => `closed with ${code} '${reason}'`)]);
      assert.equal(answer, 'still open');
      await settleSubscribers(h.gateway, [subscription]);
      const expected = stream.filter((e) => wants({ maxMessageSizeBytes: largest - 1 }, e)).map((e) => e.raw);
      assert.ok(expected.length < stream.length, 'the size limit from the URL filters the stream');
      assert.ok(
        stream.some((e) => e.did !== ALICE && e.collection !== undefined && e.collection !== FOLLOW),
        'the stream has events the URL filter would have kept out',
      );
      assert.equal(subscription.texts.length, expected.length);
      assert.deepEqual(subscription.texts, expected);
    });
  });
}
