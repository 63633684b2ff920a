/**
 * contrail drops a relay that leaves a ping unanswered for a ping interval (README, the upstream
 * connection). When contrail's own event loop stalls past that deadline (a long synchronous task,
 * a GC pause, a starved VM), the relay's pong has arrived but waits unread on the socket: a check
 * made before that is read blames the relay for contrail's own stall, drops a healthy connection
 * and counts it as a failure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { waitUntil } from './support/poll.ts';
import { startRelayProcess } from './support/peer-process.ts';
import { metricValue, startClient } from './support/upstream-harness.ts';

/** Holds this process's event loop for `ms`, as a long synchronous task does. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test("a relay whose pong arrives while contrail's event loop is stalled past the ping deadline is not dropped", async (t) => {
  const defer = cleanup(t);
  const pingIntervalMs = 1_000;
  // Answered well within the interval, but after the stall has begun.
  const relay = await startRelayProcess({ pongDelayMs: 200 });
  defer(() => relay.stop());
  const harness = startClient(relay.url, { pingIntervalMs });
  defer(() => harness.client.stop());
  await waitUntil(() => relay.pings >= 2, "the relay to read the connect's ping and the first interval's");

  const pingsBeforeStall = await new Promise<number>((resolve) =>
    relay.onNextPing(() => {
      // The interval's ping was just read by the relay; its pong comes while this process is held.
      stall(pingIntervalMs * 2.5);
      resolve(relay.pings);
    }),
  );
  const pingTimeouts = () => metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'ping_timeout' });
  await waitUntil(async () => relay.pings >= pingsBeforeStall + 3 || (await pingTimeouts()) > 0, 'three more pings after the stall (or the relay dropped)', 20_000);
  assert.equal(await pingTimeouts(), 0, 'the relay answered: the stall was ours');
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_connects_total'), 1);
});
