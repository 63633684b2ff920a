/**
 * Review test (fails on main): readClientMessage JSON.parses whatever text message a /subscribe
 * client sends, up to MAX_CLIENT_MESSAGE_BYTES (10 MiB), on the main thread. Deeply nested
 * arrays cost V8's JSON.parse about a microsecond per level, so one 10 MiB message of brackets
 * stalls the event loop for seconds (~5 s here): no ingest, no live sends, no replays for anyone.
 * With an unknown "type" the message is then ignored, so the connection stays open and the same
 * client can send it again and again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { MAX_CLIENT_MESSAGE_BYTES } from '../src/server/transport.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { Subscription } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a client message of nested arrays over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    before(async () => {
      relay = await FakeRelay.start();
      dir = tempDir();
      gateway = await startTestGateway(relay.url, dir.path, { transport });
    });
    after(async () => {
      await Subscription.closeAll();
      await gateway.stop();
      await relay.stop();
      dir.remove();
    });

    test('does not stall the gateway’s event loop for more than a second', async () => {
      const client = await Subscription.open(gateway.port, '');
      const depth = Math.floor((MAX_CLIENT_MESSAGE_BYTES - 100) / 2);
      const message = `{"type":"hello","payload":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      // The gateway runs in this process: the longest gap between ticks is its longest stall.
      let last = performance.now();
      let longest = 0;
      const ticker = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
      }, 10);
      client.send(message);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      clearInterval(ticker);
      assert.ok(longest < 1_000, `one ${message.length}-byte client message stalled the event loop for ${Math.round(longest)} ms`);
    });
  });
}
