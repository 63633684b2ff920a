/**
 * A v2 timestamp cursor older than the buffer starts at its oldest event, after an #info
 * OutdatedCursor frame naming the seq it resumed from (README, v2 cursors) — the same events, in
 * the same order, as a v1 client with that cursor gets. v1 follows the oldest event when
 * retention trims again before the subscriber was sent anything
 * (test/server-cursor-oldest-trimmed.test.ts); found by review: v2 did not, so under steady
 * ingest at the size bound, a buffer trimming its tail at every commit, most v2 clients resuming
 * from an old timestamp got their #info and then ConsumerTooSlow, plain and zstd alike, while v1
 * clients opened beside them with cursor=0 got every event. v2 has no requireHello to hold a
 * client at its position, so the clients connect while the buffer trims; each of several does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import { cleanup } from './support/cleanup.ts';
import {
  ALICE,
  POST,
  SUBSCRIBE_EVENTS,
  Subscription,
  httpGet,
  recordFor,
  startRelayGateway,
  stopRelayGateway,
  waitUntil,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';
import { v1FromV2 } from './support/v2-frames.ts';

const NSID = 'network.bsky.jetstream.subscribeEvents';
/** A unix-µs timestamp (≥ 10^15) from long before the buffer's oldest event. */
const LONG_AGO = 1_000_000_000_000_000;
const CLIENTS = 4;

for (const { transport, skip } of await transportsUnderTest()) {
  test(`v2 over ${transport}: a timestamp cursor older than the buffer, connecting while retention trims at every commit, starts at the oldest event after an OutdatedCursor naming its seq`, { skip }, async (t) => {
    const defer = cleanup(t);
    const h = await startRelayGateway({ transport, maxBufferBytes: 64 * 1024 });
    defer(() => stopRelayGateway(h));
    const { gateway, up } = h;
    const dictionary = await httpGet(gateway.port, '/dictionary');
    const decompressor = new Decompressor();
    decompressor.loadDictionary(dictionary.body);
    const dictionaryId = dictionary.headers['x-zstd-dictionary-id'];
    // Connected before any event: every event's v2 frame, in order.
    const reference = await Subscription.open(gateway.port, '', { path: SUBSCRIBE_EVENTS });
    let posts = 0;
    const bigPost = () => up.create(ALICE, POST, { ...recordFor(POST, posts, ALICE), text: 'x'.repeat(4_000) + posts++ });
    for (let i = 0; i < 30; i++) bigPost();
    await up.settle();
    assert.ok(gateway.store.trimmedUpTo > 0, 'the size bound trimmed already');

    // Steady ingest, each commit trimming the oldest events, while the clients connect.
    let ingesting = true;
    const ingest = (async () => {
      while (ingesting) {
        bigPost();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    defer(() => {
      ingesting = false;
      return ingest;
    });
    const v1: Subscription[] = [];
    const v2: Array<{ name: string; client: Subscription; texts: () => string[] }> = [];
    for (let i = 0; i < CLIENTS; i++) {
      v1.push(await Subscription.open(gateway.port, 'cursor=0'));
      const cursor = i % 2 === 0 ? LONG_AGO : gateway.store.trimmedUpTo;
      const plain = await Subscription.open(gateway.port, `cursor=${cursor}`, { path: SUBSCRIBE_EVENTS });
      v2.push({ name: `plain, cursor ${cursor}`, client: plain, texts: () => plain.texts });
      const zstd = await Subscription.open(gateway.port, `cursor=${cursor}&zstdDictionary=${dictionaryId}`, { path: SUBSCRIBE_EVENTS });
      v2.push({ name: `zstd, cursor ${cursor}`, client: zstd, texts: () => zstd.messages.map((m) => decompressor.decompress(m.data).toString()) });
    }
    ingesting = false;
    await ingest;
    await up.settle();
    const newest = gateway.store.lastSeq;
    await waitUntil(() => JSON.parse(reference.texts.at(-1)!).payload.seq === newest, 'the reference to have every event');
    const all = reference.texts;
    const seqOf = (frame: string) => JSON.parse(frame).payload.seq as number;

    for (const { name, client, texts } of v2) {
      await waitUntil(() => client.closeInfo !== undefined || (texts().length > 1 && seqOf(texts().at(-1)!) === newest), `${name}: every event or a close`);
      const [info, ...events] = texts();
      assert.equal(client.closeInfo, undefined, `${name}: not ended (${texts().at(-1)?.slice(0, 140)})`);
      const { payload } = JSON.parse(info!);
      assert.deepEqual([payload.$type, payload.name], [`${NSID}#info`, 'OutdatedCursor'], `${name}: the #info first`);
      const first = all.indexOf(events[0]!);
      assert.ok(first >= 0, `${name}: its first event is one of the stream's`);
      assert.deepEqual(events, all.slice(first), `${name}: every event from its first on, in order`);
      assert.match(payload.message, new RegExp(`resuming from seq ${seqOf(events[0]!)}, the oldest event here$`), `${name}: the #info names the seq it resumed from`);
    }
    // The v1 clients opened beside them with cursor=0 get the same: every event from the oldest they were sent on.
    const allV1 = all.map(v1FromV2);
    for (const client of v1) {
      await waitUntil(() => client.closeInfo !== undefined || client.newestTimeUs() === allV1.at(-1)!.time_us, 'v1 cursor=0: every event or a close');
      assert.equal(client.closeInfo, undefined, `v1 cursor=0: not ended (${client.texts.at(-1)?.slice(0, 140)})`);
      const first = allV1.findIndex((event) => event.time_us === client.events[0]!.time_us);
      assert.deepEqual(client.events, allV1.slice(first), 'v1 cursor=0: every event from its first on, in order');
    }
  });
}
