/**
 * A /subscribe client message is JSON-parsed on the thread that ingests and sends, and V8's
 * JSON.parse spends about a microsecond per level of nesting: one message of a few MiB of
 * brackets (the limit is MAX_CLIENT_MESSAGE_BYTES, 10 MiB) held that thread for seconds — no
 * ingest, live sends or replays for anyone — and, with an unknown "type", was then ignored, so the
 * same client could send it again and again. Such a message is now refused unparsed: the
 * connection closes with the reason, and the gateway goes on serving. A message at the depth limit
 * is read as before.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { MAX_CLIENT_MESSAGE_DEPTH } from '../src/server/client-message.ts';
import { MAX_CLIENT_MESSAGE_BYTES } from '../src/server/transport.ts';
import { FakeRelay } from './support/fake-relay.ts';
import type { tempDir } from './support/gateway.ts';
import { ALICE, POST, Subscription, Upstream, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const nested = (depth: number) => `{"type":"hello","payload":${'['.repeat(depth - 1)}"[{\\"not structure"${']'.repeat(depth - 1)}}`;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a client message of nested arrays over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    before(async () => {
      ({ relay, dir, gateway } = await startRelayGateway({ transport }));
    });
    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('past the depth limit it is refused unparsed, with the reason, and the gateway goes on serving', async () => {
      const deep = await Subscription.open(gateway.port, '');
      const bystander = await Subscription.open(gateway.port, '');
      const depth = Math.floor((MAX_CLIENT_MESSAGE_BYTES - 100) / 2);
      deep.send(nested(depth));
      const closed = await deep.waitClosed();
      assert.deepEqual(closed, { code: 1008, reason: `message nests arrays and objects more than ${MAX_CLIENT_MESSAGE_DEPTH} deep` });

      const atLimit = await Subscription.open(gateway.port, '');
      // The payload's arrays and the message object: the limit exactly; brackets inside strings do not count.
      atLimit.send(nested(MAX_CLIENT_MESSAGE_DEPTH));
      await atLimit.roundTrip();
      assert.equal(atLimit.isOpen, true, 'a message at the limit is read (an unknown type: ignored, as in Jetstream v1)');

      const up = new Upstream(relay, () => gateway.port);
      up.create(ALICE, POST);
      const { newestTimeUs } = await up.settle();
      await bystander.waitForTime(newestTimeUs!);
      await atLimit.waitForTime(newestTimeUs!);
    });
  });
}
