/**
 * A cursor at or below what retention had already removed (0, negative, or an old time_us)
 * starts at the oldest buffered event. The oldest event moves with every trim, so when
 * retention trims again before the subscriber was sent anything, it starts at the new oldest:
 * it has lost nothing it could have had, as it asked for "the oldest you hold". A cursor still
 * in the buffer when it connected names events the client wants, so when they are trimmed
 * before they are sent it ends with ConsumerTooSlow. requireHello holds the subscriber at its
 * position until its hello, so the trim falls in between for sure; found by review: under
 * steady ingest at the size bound, a buffer trimming its tail at every commit ended every
 * cursor=0 client with ConsumerTooSlow before its first event.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALICE, POST, Subscription, readWholeStream, recordFor, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const HELLO = JSON.stringify({ type: 'options_update', payload: {} });

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a cursor older than the buffer, trimmed past before anything was sent (${transport})`, { skip }, () => {
    test('starts at the oldest event held when its replay starts; a cursor in the buffer ends with ConsumerTooSlow', async () => {
      await withGateway({ transport, maxBufferBytes: 64 * 1024 }, {}, async ({ gateway, up }) => {
        const bigPost = (i: number) => up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: 'x'.repeat(4_000) });
        for (let i = 0; i < 30; i++) bigPost(i);
        await up.settle();
        assert.ok(gateway.store.trimmedUpTo > 0, 'the size bound trimmed already');
        const inBuffer = gateway.store.oldest()!.timeUs;
        const clients = {
          zero: await Subscription.open(gateway.port, 'cursor=0&requireHello=true'),
          negative: await Subscription.open(gateway.port, 'cursor=-5&requireHello=true'),
          trimmed: await Subscription.open(gateway.port, `cursor=${gateway.store.trimmedUpTo}&requireHello=true`),
          inBuffer: await Subscription.open(gateway.port, `cursor=${inBuffer}&requireHello=true`),
        };
        await waitUntil(() => gateway.server.hub.size === 4, 'the four subscribers');
        for (let i = 30; i < 60; i++) bigPost(i);
        await up.settle();
        await waitUntil(() => gateway.store.trimmedUpTo >= inBuffer, 'retention to pass every position');
        const held = await readWholeStream(gateway.port);
        for (const client of Object.values(clients)) client.send(HELLO);

        for (const name of ['zero', 'negative', 'trimmed'] as const) {
          const client = clients[name];
          await waitUntil(() => client.texts.length >= held.length || client.closeInfo !== undefined, `${name}: the buffer or a close`);
          assert.equal(client.closeInfo, undefined, `${name}: not ended (${client.texts.at(-1)?.slice(0, 120)})`);
          assert.deepEqual(client.texts, held.map((e) => e.raw), `${name}: every event held, from the oldest`);
        }
        const { code, reason } = await clients.inBuffer.waitClosed();
        assert.equal(code, 1008);
        assert.match(reason, /^ConsumerTooSlow: fell behind the buffer/);
        assert.deepEqual(clients.inBuffer.texts.map((t) => JSON.parse(t).error), ['ConsumerTooSlow'], 'its events are gone: nothing but the error');
      });
    });
  });
}
