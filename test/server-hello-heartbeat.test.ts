/**
 * requireHello with a heartbeat, on a real gateway per transport. The README says that with
 * requireHello=true "nothing is sent until the first valid options_update"; a heartbeat is
 * something sent. A second subscriber with the same heartbeat and no requireHello shows when
 * heartbeats were due (the watchdog judges both on the same tick), so no fixed wait decides it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Subscription, testDid, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NOBODY = testDid('nobody');

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`requireHello and heartbeat over ${transport}`, { skip }, () => {
    test('a subscriber waiting for its hello is sent no heartbeat, however long it waits', () =>
      withGateway({ transport }, {}, async ({ gateway }) => {
        const waiting = await Subscription.open(gateway.port, `requireHello=true&heartbeat=1s&wantedDids=${NOBODY}`);
        const control = await Subscription.open(gateway.port, `heartbeat=1s&wantedDids=${NOBODY}`);
        await control.waitForCount(2, 'two heartbeats to the subscriber without requireHello');
        await waiting.roundTrip();
        assert.deepEqual(waiting.texts, [], 'nothing is sent until the first valid options_update');
      }));
  });
}
