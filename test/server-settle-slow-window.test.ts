/**
 * A subscriber that settled its cursor on a cluster node (mode 'settling' until the node holds
 * the stream's end) starts reading then, so its first slow-consumer window starts then. The
 * window the watchdog began at connect spans the settle, in which it was sent nothing: judged by
 * it, a settle longer than a window (a node catching up, which is what settling is for) dropped
 * the subscriber as ConsumerTooSlow at the first check after it — the stream's tip had moved by
 * everything the node applied meanwhile, the subscriber less than half as far. Here the window
 * is 1 s on a clock the test moves: 1.2 s pass during the settle (400 events of 60 kB and one
 * more arrive), none after it, while the client reads nothing and the watchdog checks a few times.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { POST, Subscription, tcpSocket, waitUntil, withGateway, ALICE } from './support/subscribe-client.ts';

test('a subscriber that settled its cursor gets a fresh slow-consumer window (ws)', async () => {
  const waiting: Array<() => void> = [];
  const gate = { waitFor: () => new Promise<void>((resolve) => waiting.push(resolve)), open: () => waiting.splice(0).forEach((resolve) => resolve()) };
  let nowMs = 0;
  await withGateway({ transport: 'ws' }, { hub: { awaitClusterStreamEnd: gate.waitFor, slowWindowMs: 1_000, nowMs: () => nowMs } }, async ({ gateway, up }) => {
    up.create(ALICE, POST);
    const before = await up.settle();
    const resumed = await Subscription.open(gateway.port, `cursor=${before.newestTimeUs! + 1}`);
    await waitUntil(() => waiting.length === 1, 'the cursor to wait for the stream\'s end');
    // What the node applies while it settles: more than the client's socket buffers hold, then,
    // after more than one slow-consumer window, one more event.
    for (let i = 0; i < 400; i++) up.create(ALICE, POST, { $type: POST, createdAt: '2026-12-01T00:00:00.000Z', text: `${i} ${'x'.repeat(60_000)}` });
    await up.settle(60_000);
    nowMs += 1_200;
    up.create(ALICE, POST);
    await up.settle();
    tcpSocket(resumed).pause(); // the client reads nothing from here on, for no time on the hub's clock
    gate.open();
    const hub = gateway.server.hub;
    await waitUntil(() => hub.size === 0 || hub.counts().some((c) => c.mode === 'blocked'), 'the settled subscriber to fill its socket (or be dropped)');
    await sleep(500); // the watchdog checks every window / 6
    const modes = hub.counts().map((c) => c.mode);
    const dropped = hub.size === 0;
    tcpSocket(resumed).resume();
    assert.ok(!dropped, 'the subscriber was dropped before it had read for a window, judged over a window that began when it connected');
    assert.deepEqual(modes.filter((m) => m !== 'live'), ['blocked']);
  });
});
