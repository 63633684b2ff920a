/**
 * A v2 timestamp cursor after what retention removed (`trimmedUpTo`) but before the oldest event
 * held names no event that is gone: the stream starts at its first event, as a v1 client's with
 * that cursor does, with no #info. Found by review: it got #info OutdatedCursor "events may have
 * been missed", though no event was ever stored between the two. (A cursor at or below
 * trimmedUpTo still gets it: test/server-v2.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALICE, POST, SUBSCRIBE_EVENTS, Subscription, recordFor, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';
import { v1FromV2 } from './support/v2-frames.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`subscribeEvents: a timestamp between what retention removed and the oldest event (${transport})`, { skip }, () => {
    test('starts at the oldest event with no #info, as v1 does with that cursor', () =>
      withGateway({ transport, maxBufferBytes: 64 * 1024 }, {}, async ({ gateway, up }) => {
        // One post at a time, so consecutive events are apart in time_us and the gap has room for a cursor.
        for (let i = 0; i < 30; i++) {
          up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: 'x'.repeat(4_000) + i });
          await up.settle();
        }
        const trimmedUpTo = gateway.store.trimmedUpTo;
        const oldest = gateway.store.oldest()!;
        assert.ok(trimmedUpTo > 0 && oldest.timeUs > trimmedUpTo + 1, 'retention trimmed, and left room before the oldest event');
        const cursor = trimmedUpTo + 1;

        const v2 = await Subscription.open(gateway.port, `cursor=${cursor}`, { path: SUBSCRIBE_EVENTS });
        const v1 = await Subscription.open(gateway.port, `cursor=${cursor}`);
        const newest = gateway.store.lastSeq;
        await waitUntil(() => v2.texts.length > 0 && JSON.parse(v2.texts.at(-1)!).payload.seq === newest, 'v2: the newest event');
        await v1.waitForTime(gateway.store.lastTimeUs, 'v1: the newest event');
        const first = JSON.parse(v2.texts[0]!);
        assert.equal(first.payload.$type.endsWith('#info'), false, `no #info first: ${v2.texts[0]!.slice(0, 200)}`);
        assert.equal(first.payload.seq, oldest.seq, 'the stream starts at the oldest event');
        assert.deepEqual(v2.texts.map(v1FromV2), v1.events, 'the events v1 sends for that cursor');
      }));
  });
}
