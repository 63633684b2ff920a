/**
 * A subscriber following the oldest event (cursor=0, or a v2 timestamp older than the buffer)
 * gets events even when retention trims between every read it asks a replay worker for and the
 * worker's read. Found by review: with a hot log smaller than the buffer (so the oldest events
 * are read by a worker) and a buffer under one block (so every commit trims its tail), each
 * worker read answered "trimmed", the subscriber was moved to the new oldest and asked again,
 * and got nothing for as long as ingest ran. Here every read that starts at the oldest event is
 * overtaken by a commit that trims past it before the worker reads, and by another before the
 * hub has the answer (gateReplayReads), up to TRIMS times; the followers must have been sent
 * their events by then, each a gapless run of the stream from its first event on, and the v2
 * one's #info must name the seq of that event (the oldest when it was read, no longer held).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { gateReplayReads, type ReadRequest } from './support/replay-read-gate.ts';
import { ALICE, POST, SUBSCRIBE_EVENTS, Subscription, recordFor, startRelayGateway, stopRelayGateway, waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';
import { v1FromV2 } from './support/v2-frames.ts';

/** Reads overtaken by a trim at most: the followers' first reads, with room to spare. */
const TRIMS = 12;
/** A unix-µs timestamp (≥ 10^15) from long before the buffer's oldest event. */
const LONG_AGO = 1_000_000_000_000_000;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a subscriber following the oldest event while retention trims before each of its reads (${transport})`, { skip }, () => {
    test('is sent the events held from the oldest on, after one overtaken read, not once the trims stop', async (t) => {
      const defer = cleanup(t);
      // A 64 KiB buffer of 4 KB posts trims its tail at every commit; an 8 KiB hot log holds the newest two.
      const h = await startRelayGateway({ transport, maxBufferBytes: 64 * 1024, hotCacheBytes: 8 * 1024 });
      defer(() => stopRelayGateway(h));
      const { gateway, up } = h;
      const reference = await Subscription.open(gateway.port, '', { path: SUBSCRIBE_EVENTS });
      let posts = 0;
      const bigPost = () => up.create(ALICE, POST, { ...recordFor(POST, posts, ALICE), text: 'x'.repeat(4_000) + posts++ });
      for (let i = 0; i < 30; i++) bigPost();
      await up.settle();
      assert.ok(gateway.store.trimmedUpTo > 0, 'the size bound trimmed already');

      let overtaken = 0;
      const fromOldest = new WeakSet<ReadRequest>();
      const trimPast = async (position: number) => {
        bigPost();
        await waitUntil(() => gateway.store.trimmedUpTo > position, 'a trim past the read');
      };
      const ungate = gateReplayReads(gateway.server.replayPool!, {
        // A read from the oldest event: a commit trims past it before the worker reads, and
        // another before the hub has its answer.
        before: async (request) => {
          if (request.position > gateway.store.trimmedUpTo || overtaken === TRIMS) return;
          overtaken++;
          fromOldest.add(request);
          await trimPast(request.position);
        },
        after: async (request) => {
          if (fromOldest.has(request)) await trimPast(gateway.store.trimmedUpTo);
        },
      });
      defer(ungate);
      const v1 = await Subscription.open(gateway.port, 'cursor=0');
      const v2 = await Subscription.open(gateway.port, `cursor=${LONG_AGO}`, { path: SUBSCRIBE_EVENTS });
      await waitUntil(() => (v1.texts.length > 0 && v2.texts.length > 1) || overtaken === TRIMS, 'an event to each follower, or every trim');
      assert.ok(overtaken < TRIMS, `both followers were sent events while each read from the oldest was overtaken (${overtaken} reads overtaken)`);
      await up.settle();

      const newest = gateway.store.lastSeq;
      const seqOf = (frame: string) => JSON.parse(frame).payload.seq as number;
      await waitUntil(() => reference.texts.length > 0 && seqOf(reference.texts.at(-1)!) === newest, 'the reference to have every event');
      const all = reference.texts;
      await waitUntil(() => v2.closeInfo !== undefined || seqOf(v2.texts.at(-1)!) === newest, 'v2: every event or a close');
      assert.equal(v2.closeInfo, undefined, `v2: not ended (${v2.texts.at(-1)?.slice(0, 140)})`);
      const [info, ...events] = v2.texts;
      const { payload } = JSON.parse(info!);
      assert.equal(payload.name, 'OutdatedCursor', 'v2: the #info first');
      const first = all.indexOf(events[0]!);
      assert.ok(first >= 0, 'v2: its first event is one of the stream’s');
      assert.deepEqual(events, all.slice(first), 'v2: every event from its first on, in order');
      assert.match(payload.message, new RegExp(`resuming from seq ${seqOf(events[0]!)}, the oldest event here$`), 'v2: the #info names the seq it resumed from');

      const allV1 = all.map(v1FromV2);
      await waitUntil(() => v1.closeInfo !== undefined || v1.newestTimeUs() === allV1.at(-1)!.time_us, 'v1: every event or a close');
      assert.equal(v1.closeInfo, undefined, `v1: not ended (${v1.texts.at(-1)?.slice(0, 140)})`);
      const firstV1 = allV1.findIndex((event) => event.time_us === v1.events[0]!.time_us);
      assert.ok(firstV1 >= 0, 'v1: its first event is one of the stream’s');
      assert.deepEqual(v1.events, allV1.slice(firstV1), 'v1: every event from its first on, in order');
    });
  });
}
