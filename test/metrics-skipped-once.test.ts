/**
 * contrail_events_skipped_total{reason="max_message_size"} counts each event a subscriber wanted
 * but was not sent for its size once. A live subscriber whose send buffer fills partway through a
 * committed batch reads the rest of that batch again from the buffer once it drains: an event over
 * its maxMessageSizeBytes in that rest must not be counted again there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { seriesValue } from './support/exposition.ts';
import { ALICE, POST, Subscription, httpGet, recordFor, startRelayGateway, stopRelayGateway, tcpSocket, waitUntil, type RelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const SKIPPED = 'contrail_events_skipped_total{reason="max_message_size"}';
const LIMIT = 30_000;

async function metric(metricsPort: number, name: string): Promise<number> {
  return seriesValue((await httpGet(metricsPort, '/metrics')).body.toString(), name);
}

const modes = (h: RelayGateway) => h.gateway.server.hub.counts().map((c) => c.mode);

for (const { transport, skip } of await transportsUnderTest()) {
  test(`${transport}: an event over maxMessageSizeBytes is counted skipped once, also when the subscriber filled up before it`, { skip, timeout: 120_000 }, async (t) => {
    const h = await startRelayGateway({ transport }, { hub: { highWaterBytes: 64 * 1024 } });
    const defer = cleanup(t);
    defer(() => stopRelayGateway(h));
    const before = await metric(h.gateway.metricsPort, SKIPPED);

    const reader = await Subscription.open(h.gateway.port, `wantedCollections=${POST}&maxMessageSizeBytes=${LIMIT}`);
    await waitUntil(() => modes(h).includes('live'), 'the subscriber to be live');
    tcpSocket(reader).pause();
    // Each commit batch alternates events under and over the limit, so wherever a send stops
    // partway through a batch, events over the limit follow in what is read again.
    let small = 0;
    let large = 0;
    const round = (n: number) => {
      for (let i = 0; i < 10; i++) {
        h.up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: `${n} ${i} ${'s'.repeat(LIMIT - 5_000)}` });
        h.up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: `${n} ${i} ${'L'.repeat(LIMIT)}` });
        small++;
        large++;
      }
    };
    let rounds = 0;
    await waitUntil(
      async () => {
        round(rounds++);
        await h.up.settle();
        return !modes(h).includes('live');
      },
      'the paused subscriber to fill up and leave the live index',
      60_000,
    );
    round(rounds++);
    await h.up.settle();

    tcpSocket(reader).resume();
    await waitUntil(() => reader.messages.length >= small && modes(h).includes('live'), `all ${small} events under the limit, and live again`, 60_000);
    assert.equal(reader.messages.length, small, 'no event over the limit was sent');
    assert.equal((await metric(h.gateway.metricsPort, SKIPPED)) - before, large, `each of the ${large} events over the limit counted once`);
  });
}
