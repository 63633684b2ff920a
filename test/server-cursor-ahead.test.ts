/**
 * On a cluster node, a cursor past the buffer's newest event may name events another node has
 * served and this one has yet to apply, so the hub holds such a subscriber ('settling') until the
 * node holds everything the cluster's stream held at connect, then resolves its cursor again
 * (subscribers.ts, settle). The cluster's part — the wait itself, and a lagging node serving the
 * resumed client exactly once — runs against real NATS in test/cluster/lagging-node-cursor.test.ts;
 * here the stream's end is a gate the test opens, to pin the server's side on both transports:
 * nothing is sent while settling, a hello sent meanwhile counts, a cursor still ahead once settled
 * is a future one (the live tip; v2's FutureCursor notice comes then), one now in the buffer
 * replays from it, a v2 seq cursor retention passed meanwhile is told CursorTooOld, and a client
 * that left meanwhile is sent nothing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LIKE, POST, SUBSCRIBE_EVENTS, Subscription, httpGet, recordFor, waitUntil, withGateway, ALICE, BOB } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NSID = 'network.bsky.jetstream.subscribeEvents';

/** Events sent to every subscriber so far (contrail_events_sent_total, all its series). */
async function eventsSent(metricsPort: number): Promise<number> {
  let total = 0;
  for (const line of (await httpGet(metricsPort, '/metrics')).body.toString().split('\n')) {
    if (line.startsWith('contrail_events_sent_total{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Stands for the cluster stream's end: every wait resolves when the test opens it. */
function streamEndGate() {
  const waiting: Array<() => void> = [];
  return {
    waitFor: () => new Promise<void>((resolve) => waiting.push(resolve)),
    get waiting() {
      return waiting.length;
    },
    open: () => waiting.splice(0).forEach((resolve) => resolve()),
  };
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a cursor ahead of a cluster node's buffer (${transport})`, { skip }, () => {
    test('waits for the stream\'s end, then replays from the cursor, or starts live if it is still ahead', async () => {
      const gate = streamEndGate();
      await withGateway({ transport }, { hub: { awaitClusterStreamEnd: gate.waitFor } }, async ({ gateway, up }) => {
        up.create(ALICE, POST);
        const before = await up.settle();
        const justAhead = before.newestTimeUs! + 1;
        const resumed = await Subscription.open(gateway.port, `cursor=${justAhead}`);
        const hello = await Subscription.open(gateway.port, `cursor=${justAhead}&requireHello=true`);
        const future = await Subscription.open(gateway.port, `cursor=${justAhead + 3_600_000_000_000}`);
        const futureSeq = await Subscription.open(gateway.port, `cursor=${before.eventCount + 1_000}`, { path: SUBSCRIBE_EVENTS });
        const inBuffer = await Subscription.open(gateway.port, `cursor=${before.newestTimeUs}`);
        await waitUntil(() => gate.waiting === 4, 'four cursors ahead of the buffer to wait for the stream\'s end (one in it does not)');

        // What the node applies while they wait (the events the client had not got from the node it left).
        up.create(BOB, LIKE);
        up.create(ALICE, POST);
        const applied = await up.settle();
        hello.send(JSON.stringify({ type: 'options_update', payload: { wantedCollections: [POST] } }));
        await Promise.all([resumed, hello, future, futureSeq].map((s) => s.roundTrip()));
        assert.deepEqual([resumed, hello, future, futureSeq].map((s) => s.messages.length), [0, 0, 0, 0], 'nothing is sent while settling');
        await inBuffer.waitForTime(applied.newestTimeUs!);

        gate.open();
        await resumed.waitForTime(applied.newestTimeUs!);
        await hello.waitForTime(applied.newestTimeUs!);
        const sinceCursor = inBuffer.events.filter((e) => e.time_us >= justAhead);
        assert.equal(sinceCursor.length, 2);
        assert.deepEqual(resumed.texts, inBuffer.texts.slice(1), 'from the cursor on, replayed once settled');
        assert.deepEqual(hello.events.map((e) => e.commit.collection), [POST], 'the hello sent while settling applies; no second one is needed');
        await futureSeq.waitForCount(1, 'the FutureCursor notice, once settled');
        assert.equal(JSON.parse(futureSeq.texts[0]!).payload.name, 'FutureCursor');

        up.create(BOB, POST);
        const live = await up.settle();
        await Promise.all([future, futureSeq, resumed].map((s) => s.waitForCount(s === futureSeq ? 2 : s === resumed ? 3 : 1)));
        assert.deepEqual(future.events.map((e) => e.time_us), [live.newestTimeUs], 'a cursor still ahead once settled is the live tip');
        assert.equal(JSON.parse(futureSeq.texts[1]!).payload.$type, `${NSID}#commit`);
      });
    });

    test('a v2 seq cursor that retention passes while it settles gets a CursorTooOld error frame, then close 1008', async () => {
      const gate = streamEndGate();
      await withGateway({ transport, maxBufferBytes: 64 * 1024 }, { hub: { awaitClusterStreamEnd: gate.waitFor } }, async ({ gateway, up }) => {
        up.create(ALICE, POST);
        const before = await up.settle();
        const cursor = before.eventCount + 2; // beyond the next seq: ahead of the buffer
        const tooOld = await Subscription.open(gateway.port, `cursor=${cursor}`, { path: SUBSCRIBE_EVENTS });
        await waitUntil(() => gate.waiting === 1, 'the cursor to wait');
        // While it waits, the node applies more than --max-buffer-bytes holds: the cursor's seq is trimmed.
        for (let i = 0; i < 30; i++) up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: 'x'.repeat(10_000) });
        await up.settle();
        await waitUntil(() => (gateway.store.oldest()?.seq ?? 0) > cursor, 'retention to pass the cursor');
        gate.open();
        const { code, reason } = await tooOld.waitClosed();
        assert.equal(code, 1008);
        assert.match(reason, new RegExp(`^CursorTooOld: cursor ${cursor} is older than this server's buffer`));
        assert.equal(tooOld.messages.length, 1, 'one message: the error frame');
        const error = JSON.parse(tooOld.texts[0]!);
        assert.deepEqual([error.$type, error.error], ['error', 'CursorTooOld']);
        assert.match(error.message, new RegExp(`^cursor ${cursor} is older than this server's buffer: the oldest seq here is ${gateway.store.oldest()!.seq}$`));
      });
    });

    test('a client that leaves while settling is sent nothing once the node has caught up', async () => {
      const gate = streamEndGate();
      await withGateway({ transport }, { hub: { awaitClusterStreamEnd: gate.waitFor } }, async ({ gateway, up }) => {
        up.create(ALICE, POST);
        const { newestTimeUs } = await up.settle();
        const leaving = await Subscription.open(gateway.port, `cursor=${newestTimeUs! + 1}`);
        await waitUntil(() => gate.waiting === 1, 'the cursor to wait');
        await leaving.close();
        await waitUntil(() => gateway.server.hub.size === 0, 'the hub to forget it');
        // The node applies what the cursor named, then holds the stream's end. The roster forgot the
        // client already, so only the events sent tell whether the settle replayed to it anyway.
        up.create(BOB, POST);
        await up.settle();
        const before = await eventsSent(gateway.metricsPort);
        gate.open();
        up.create(ALICE, POST);
        await up.settle();
        const probe = await Subscription.open(gateway.port, `cursor=${newestTimeUs}`);
        await probe.waitForCount(3, 'a later subscriber to get everything');
        await probe.close();
        assert.equal((await eventsSent(gateway.metricsPort)) - before, 3, 'only the later subscriber\'s 3 events were sent');
      });
    });
  });
}
