/**
 * The gateway drops a subscriber that leaves a ping unanswered until the next (README, Design). When
 * the gateway's own event loop stalls past that deadline (a long synchronous task, a GC pause, a
 * starved VM), the subscriber's pong has arrived but waits unread on the socket: a check made
 * before it is read blames the subscriber for the gateway's stall and drops a healthy client.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { startSubscriberProcess } from './support/peer-process.ts';
import { waitUntil } from './support/poll.ts';
import { stats, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Holds this process's event loop for `ms`, as a long synchronous task does. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`pings over ${transport}`, { skip }, () => {
    test("a subscriber whose pong arrives while the gateway's event loop is stalled past the ping deadline is not dropped", async (t) => {
      const defer = cleanup(t);
      const pingIntervalMs = 1_000;
      await withGateway({ transport }, { hub: { pingIntervalMs } }, async ({ gateway }) => {
        // Answered well within the interval, but after the stall has begun.
        const subscriber = await startSubscriberProcess({ url: `ws://127.0.0.1:${gateway.port}/subscribe`, pongDelayMs: 200 });
        defer(() => subscriber.stop());
        await waitUntil(() => subscriber.pings >= 1, 'the first ping to the subscriber');
        const pingsBeforeStall = await new Promise<number>((resolve) =>
          subscriber.onNextPing(() => {
            // A ping was just read by the subscriber; its pong comes while this process is held.
            stall(pingIntervalMs * 2.5);
            resolve(subscriber.pings);
          }),
        );
        await waitUntil(() => subscriber.pings >= pingsBeforeStall + 3 || subscriber.closeCode !== undefined, 'three more pings after the stall (or the subscriber dropped)', 20_000);
        assert.equal(subscriber.closeCode, undefined, 'the subscriber answered: the stall was the gateway\'s');
        assert.equal((await stats(gateway.port)).subscribers, 1);
      });
    });
  });
}
