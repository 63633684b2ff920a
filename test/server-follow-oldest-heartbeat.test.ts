/**
 * A heartbeat's time_us resumes right after everything examined for the subscriber (README,
 * Heartbeat), and a subscriber following the oldest event stops following once it was sent
 * anything (README, Cursors). Found by review: the watchdog sent heartbeats to a subscriber still
 * following the oldest event, so one whose first read took longer than its heartbeat interval got
 * a heartbeat at its position, then a trim moved it on, and its events started after events it
 * was never sent: resuming from the heartbeat lost them. Here the follower's first read is held
 * at the worker (gateReplayReads) while a second subscriber with the same heartbeat, connected
 * after it, shows two heartbeats were due; then a commit trims past the held read and it goes on.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { gateReplayReads, type ReadRequest } from './support/replay-read-gate.ts';
import { ALICE, POST, Subscription, recordFor, startRelayGateway, stopRelayGateway, testDid, waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NOBODY = testDid('nobody');

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a subscriber following the oldest event with a heartbeat (${transport})`, { skip }, () => {
    test('gets no heartbeat its events do not follow from: resuming from any heartbeat it got loses nothing', async (t) => {
      const defer = cleanup(t);
      // A 64 KiB buffer of 4 KB posts trims its tail at every commit; an 8 KiB hot log holds the newest two.
      const h = await startRelayGateway({ transport, maxBufferBytes: 64 * 1024, hotCacheBytes: 8 * 1024 });
      defer(() => stopRelayGateway(h));
      const { gateway, up } = h;
      const reference = await Subscription.open(gateway.port);
      let posts = 0;
      const bigPost = () => up.create(ALICE, POST, { ...recordFor(POST, posts, ALICE), text: 'x'.repeat(4_000) + posts++ });
      for (let i = 0; i < 30; i++) bigPost();
      await up.settle();
      assert.ok(gateway.store.trimmedUpTo > 0, 'the size bound trimmed already');

      let held: ReadRequest | undefined;
      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      defer(release);
      defer(
        gateReplayReads(gateway.server.replayPool!, {
          // The first read from the oldest event waits at the worker until released.
          before: async (request) => {
            if (held || request.position > gateway.store.trimmedUpTo) return;
            held = request;
            await released;
          },
        }),
      );
      const follower = await Subscription.open(gateway.port, 'cursor=0&heartbeat=1s');
      await waitUntil(() => held !== undefined, "the follower's first read held");
      const control = await Subscription.open(gateway.port, `heartbeat=1s&wantedDids=${NOBODY}`);
      await control.waitForCount(2, 'two heartbeats to the subscriber connected after the follower');
      bigPost();
      await waitUntil(() => gateway.store.trimmedUpTo > held!.position, 'a trim past the held read');
      release();
      await up.settle();

      const newest = gateway.store.lastTimeUs;
      await reference.waitForTime(newest, 'the reference to have every event');
      const all = reference.events;
      await waitUntil(() => follower.closeInfo !== undefined || follower.events.some((m) => m.type !== 'heartbeat' && m.time_us === newest), 'the follower: every event or a close');
      assert.equal(follower.closeInfo, undefined, `not ended (${follower.texts.at(-1)?.slice(0, 140)})`);
      const messages = follower.events;
      const events = messages.filter((m) => m.type !== 'heartbeat');
      const first = all.findIndex((event) => event.time_us === events[0]!.time_us);
      assert.ok(first >= 0, 'its first event is one of the stream’s');
      assert.deepEqual(events, all.slice(first), 'every event from its first on, in order');
      messages.forEach((message, i) => {
        if (message.type !== 'heartbeat') return;
        const resumed = all.filter((event) => event.time_us >= message.time_us);
        const after = messages.slice(i + 1).filter((m) => m.type !== 'heartbeat');
        assert.deepEqual(after, resumed, `a heartbeat at time_us ${message.time_us} (message ${i}) is followed by every event from it on`);
      });
    });
  });
}
