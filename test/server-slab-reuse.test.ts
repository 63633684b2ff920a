/**
 * Replays from sealed blocks share reused memory (src/store/slabs.ts): a partition is decompressed
 * into a slab, and a slab is filled again once no read pins it. A main-thread replay releases a
 * batch once it is sent, but only on sinks that copy what they cannot write at once
 * (SubscriberSink.copiesOnSend). Through the whole gateway, once per transport: a client that
 * stops reading in the middle of a replay, while other clients replay many pools' worth of slabs
 * past it, still gets every event byte for byte once it reads again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Entry } from '../src/events/entry.ts';
import type { Gateway } from '../src/gateway.ts';
import { EventStore } from '../src/store/event-store.ts';
import { SLAB_BYTES } from '../src/store/slabs.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { Subscription, tcpSocket, waitUntil } from './support/subscribe-client.ts';
import { mulberry32 } from './support/synthetic.ts';
import { transportsUnderTest } from './support/transports.ts';

/** ~22 MB of events in 64-event blocks: many times the slabs in use at once, so slabs are refilled. */
const EVENTS = 30_000;
const BLOCK_EVENTS = 64;

/** Partitions are per collection: a block of several is merged, and only merges use slabs. */
const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow', 'app.bsky.feed.repost'];

/** Events whose JSON differs from its neighbours' all along, so bytes from another event show. */
function makeEvents(first: number): Entry[] {
  const random = mulberry32(11);
  return Array.from({ length: EVENTS }, (_, i) => {
    const timeUs = first + 3 * i;
    const did = `did:plc:${(i % 997).toString(36).padStart(24, 'a')}`;
    const collection = COLLECTIONS[i % COLLECTIONS.length]!;
    const text = Array.from({ length: 40 }, () => random().toString(36).slice(2, 12)).join(' ');
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"3l${i}","operation":"create","collection":"${collection}","rkey":"r${i}","record":{"text":"${text}"},"cid":"bafy${i}"}}`;
    return { timeUs, did, kind: 'commit', collection, json: Buffer.from(json) };
  });
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`replays through reused slabs over ${transport}`, { skip }, () => {
    const expected: string[] = [];
    let cursor: string;
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;

    before(async () => {
      dir = tempDir();
      // An hour old: well inside retention.
      const events = makeEvents(Date.now() * 1000 - 3_600_000_000);
      cursor = `cursor=${events[0]!.timeUs}`;
      expected.push(...events.map((e) => e.json.toString()));
      const decompressed = events.reduce((sum, e) => sum + e.json.byteLength, 0);
      assert.ok(decompressed > 16 * SLAB_BYTES, `${decompressed} bytes: more than the pool's free slabs`);
      const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: BLOCK_EVENTS, fsync: false });
      for (let i = 0; i < events.length; i += 1_000) await store.commit({ entries: events.slice(i, i + 1_000), revs: new Map() });
      await store.close();
      relay = await FakeRelay.start();
      // Replays from the blocks (a hot log too small to hold them) on the main thread, where the
      // store's slabs go out on the sockets; a stalled client is never dropped as too slow here.
      // Over ws the stalled socket's queue holds the views it was given: a high-water mark of
      // many batches keeps whole batches queued (past the slab the next read pins), so one
      // released while queued would have its slab refilled under it.
      const highWaterBytes = transport === 'ws' ? 8 * SLAB_BYTES : undefined;
      gateway = await startTestGateway(relay.url, dir.path, { transport, replayWorkers: 0, hotCacheBytes: 64 * 1024 }, { hub: { slowWindowMs: 300_000, highWaterBytes } });
    });

    after(async () => {
      await Subscription.closeAll();
      await gateway?.stop();
      await relay?.stop();
      dir?.remove();
    });

    test('a client stalled mid-replay gets every event intact after others replayed the whole buffer past it', async () => {
      const stalled = await Subscription.open(gateway.port, cursor);
      await waitUntil(() => stalled.messages.length >= 100, 'the stalled client to start its replay');
      tcpSocket(stalled).pause();
      // The server keeps sending until the socket's buffers are full; wait until it has stopped.
      let seen = -1;
      await waitUntil(async () => {
        const bytes = tcpSocket(stalled).bytesRead;
        const stopped = bytes === seen;
        seen = bytes;
        await new Promise((resolve) => setTimeout(resolve, 200));
        return stopped;
      }, 'the server to stop writing to the stalled client');
      assert.ok(stalled.messages.length < EVENTS / 2, `the stall came mid-replay (${stalled.messages.length} of ${EVENTS} read)`);

      const others = await Promise.all([Subscription.open(gateway.port, cursor), Subscription.open(gateway.port, cursor)]);
      for (const other of others) await other.waitForCount(EVENTS, 'a whole replay', 60_000);
      for (const other of others) assert.deepEqual(other.texts, expected, 'a full replay beside the stalled one');

      tcpSocket(stalled).resume();
      // Bytes refilled under a queued frame are not UTF-8 as a rule: the client closes at once.
      const closedEarly = stalled.closed.then(({ code, reason }) => assert.fail(`the stalled client was closed after ${stalled.messages.length} events: ${code} ${reason}`));
      await Promise.race([stalled.waitForCount(EVENTS, 'the rest of the stalled replay', 60_000), closedEarly]);
      assert.equal(stalled.texts.length, EVENTS);
      const wrong = stalled.texts.findIndex((text, i) => text !== expected[i]);
      assert.equal(wrong, -1, `event ${wrong} of the stalled replay: ${stalled.texts[wrong]?.slice(0, 160)}`);
    });
  });
}
