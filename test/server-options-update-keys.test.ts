/**
 * Jetstream v1 decodes a client message with Go's encoding/json, which matches a JSON key to a
 * field case-insensitively: `{"Type":"options_update","Payload":{"WantedCollections":[…]}}`, what
 * a client serialising its own PascalCase type (C#, Go without tags) sends, updates the filter
 * there. contrail must read it the same way: it ignored such keys, so that update cleared the
 * filter (an absent list means no filter) and the client was sent every event, and such a hello
 * was ignored, so a requireHello client was sent nothing at all. On both transports.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import {
  ALICE,
  FOLLOW,
  POST,
  Subscription,
  settleSubscribers,
  startGatewayWithStream,
  wants,
  type FilterSpec,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`options_update keys are matched as Jetstream v1's Go matches them, over ${transport}`, { skip }, () => {
    test('a key in another case sets its field; of two keys for one field the last wins', async (t) => {
      const { h, stream } = await startGatewayWithStream(cleanup(t), transport);
      const largest = Math.max(...stream.map((e) => Buffer.byteLength(e.raw)));

      const cases: Array<[message: string, filter: FilterSpec]> = [
        [`{"type":"options_update","payload":{"WantedCollections":["${FOLLOW}"]}}`, { wantedCollections: [FOLLOW] }],
        [`{"Type":"options_update","PAYLOAD":{"wantedcollections":["${POST}"],"WANTEDDIDS":["${ALICE}"]}}`, { wantedCollections: [POST], wantedDids: [ALICE] }],
        [`{"type":"options_update","payload":{"MaxMessageSizeBytes":${largest - 1}}}`, { maxMessageSizeBytes: largest - 1 }],
        [`{"type":"options_update","payload":{"wantedCollections":["${POST}"],"WantedCollections":["${FOLLOW}"]}}`, { wantedCollections: [FOLLOW] }],
      ];
      // Each message is the hello of a replay from the start, so each must be read as an update.
      const subscriptions = await Promise.all(cases.map(() => Subscription.open(h.gateway.port, 'cursor=0&requireHello=true')));
      for (const [i, [message]] of cases.entries()) subscriptions[i]!.send(message);
      await Promise.all(subscriptions.map((s) => s.roundTrip()));
      await settleSubscribers(h.gateway, subscriptions);
      for (const [i, [message, filter]] of cases.entries()) {
        const expected = stream.filter((e) => wants(filter, e)).map((e) => e.raw);
        assert.ok(expected.length > 0 && expected.length < stream.length, `${message} filters the stream`);
        assert.equal(subscriptions[i]!.texts.length, expected.length, `${message} → ${JSON.stringify(filter)}`);
        assert.deepEqual(subscriptions[i]!.texts, expected, message);
      }
    });
  });
}
