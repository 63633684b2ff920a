/**
 * Through the gateway, on the main thread and on a replay worker: a replay for a DID whose
 * stored events are more than one per-DID index batch (512 postings, sealed-reads.ts) gets
 * every one of them that its filter wants (see test/store-did-index-batches.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Entry } from '../src/events/entry.ts';
import type { Gateway } from '../src/gateway.ts';
import { EventStore } from '../src/store/event-store.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { settleSubscribers, Subscription } from './support/subscribe-client.ts';

const BUSY = 'did:plc:busybusybusybusybusybusy';
const BUSY_EVENTS = 700;
const OTHER_EVENTS = 50_000;

function makeEvents(first: number): Entry[] {
  const events: Entry[] = [];
  const total = BUSY_EVENTS + OTHER_EVENTS;
  const busyEvery = Math.floor(total / BUSY_EVENTS);
  let busyCount = 0;
  for (let i = 0; i < total; i++) {
    const timeUs = first + i;
    const busy = i % busyEvery === 0 && busyCount < BUSY_EVENTS;
    const did = busy ? BUSY : `did:plc:${(i % 5_000).toString(36).padStart(24, 'a')}`;
    const collection = (busy ? busyCount++ : i) % 2 === 0 ? 'app.bsky.feed.like' : 'app.bsky.feed.post';
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"3l${i}","operation":"create","collection":"${collection}","rkey":"r${i}","record":{},"cid":"bafy${i}"}}`;
    events.push({ timeUs, did, kind: 'commit', collection, json: Buffer.from(json) });
  }
  return events;
}

for (const replayWorkers of [0, 1]) {
  describe(`a busy DID's replay through the per-DID index (replay workers: ${replayWorkers})`, () => {
    let expected: string[] = [];
    let cursor = 0;
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;

    before(async () => {
      dir = tempDir();
      // An hour old: well inside retention.
      const events = makeEvents(Date.now() * 1000 - 3_600_000_000);
      cursor = events[0]!.timeUs;
      expected = events.filter((e) => e.did === BUSY && e.collection === 'app.bsky.feed.like').map((e) => e.json.toString());
      const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
      for (let i = 0; i < events.length; i += 2_000) await store.commit({ entries: events.slice(i, i + 2_000), revs: new Map() });
      await store.close();
      relay = await FakeRelay.start();
      gateway = await startTestGateway(relay.url, dir.path, { replayWorkers, hotCacheBytes: 64 * 1024 });
    });

    after(async () => {
      await Subscription.closeAll();
      await gateway?.stop();
      await relay?.stop();
      dir?.remove();
    });

    test('wantedDids with wantedCollections gets every wanted event of a DID with more than 512 stored', async () => {
      const client = await Subscription.open(gateway.port, `wantedDids=${BUSY}&wantedCollections=app.bsky.feed.like&cursor=${cursor}`);
      // Every wanted event is stored, so once the replay has reached the tip everything it sends has been sent.
      await settleSubscribers(gateway, [client]);
      assert.equal(client.texts.length, expected.length, `got ${client.texts.length} of the ${expected.length} wanted events`);
      assert.deepEqual(client.texts, expected);
    });
  });
}
