/**
 * /xrpc/network.bsky.jetstream.subscribeEvents, the Jetstream v2 wire, against a real gateway
 * (FakeRelay → ingest → LMDB → server) on 127.0.0.1, once per transport: every frame shape,
 * every refusal, cursors (seq and timestamp, inclusive; too old, outdated, future), zstd,
 * getZstdDictionary, client messages, ConsumerTooSlow, and the same events as /subscribe for
 * random filters and cursors, from the same buffer in the same run.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import type { Gateway } from '../src/gateway.ts';
import { resolveCursor } from '../src/server/subscribe-events.ts';
import { EventStore } from '../src/store/index.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import {
  ALICE,
  BOB,
  CAROL,
  FOLLOW,
  LIKE,
  POST,
  REPOST,
  SUBSCRIBE_EVENTS,
  Subscription,
  Upstream,
  httpGet,
  queryFor,
  readWholeStream,
  recordFor,
  settleSubscribers,
  startRelayGateway,
  stats,
  stopRelayGateway,
  tcpSocket,
  upgradeRequest,
  waitUntil,
  wants,
  withGateway,
  type FilterSpec,
  type StoredEvent,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';
import { v1FromV2, v2Expected } from './support/v2-frames.ts';

const NSID = 'network.bsky.jetstream.subscribeEvents';

function pushKnownStream(up: Upstream, seed: number): void {
  for (const [i, account] of [ALICE, BOB, CAROL].entries()) {
    for (const collection of [POST, LIKE, REPOST, FOLLOW]) up.create(account, collection);
    up.commit(account, [{ collection: LIKE, action: 'delete' }]);
    up.identity(account, `user${i}.bsky.social`);
    up.account(account, i % 2 === 0, i % 2 === 0 ? undefined : 'deactivated');
  }
  up.commit(ALICE, [{ collection: POST }, { collection: POST }, { collection: FOLLOW }]);
  up.synthetic(200, seed, 20);
}

/** Opens a v2 subscription; the query is a subscribeEvents query. */
const openV2 = (port: number, query = '', options: Parameters<typeof Subscription.open>[2] = {}) =>
  Subscription.open(port, query, { path: SUBSCRIBE_EVENTS, ...options });

const dictionaryId = async (gateway: Gateway) => Number((await httpGet(gateway.port, '/dictionary')).headers['x-zstd-dictionary-id']);

/** A v2 subscription's event frames (no #info), as parsed JSON. */
const v2Events = (s: Subscription) => s.texts.map((t) => JSON.parse(t)).filter((f) => f.payload?.$type !== `${NSID}#info`);

test('resolving a cursor reads no block: the block directory names the oldest event', async (t) => {
  const dir = tempDir('contrail-store-');
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 8 });
  t.after(async () => {
    await store.close();
    dir.remove();
  });
  const did = 'did:plc:alice000000000000000000a';
  const entries = Array.from({ length: 40 }, (_, i) => {
    const timeUs = 1_700_000_000_000_000 + i;
    return { timeUs, did, kind: 'identity' as const, collection: null, json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"kind":"identity","identity":{"did":"${did}","seq":${i},"time":"2026-01-01T00:00:00.000Z"}}`) };
  });
  await store.commit({ entries, revs: new Map() });
  await waitUntil(() => store.sealState.unsealedEvents === 0, 'the events sealed into blocks');
  const read = store.partitionsRead;
  assert.deepEqual(resolveCursor(store, 1), { position: entries[0]!.timeUs - 1 });
  // Nothing was trimmed: a timestamp before the oldest event misses none, and gets no #info.
  assert.deepEqual(resolveCursor(store, entries[0]!.timeUs - 10), { position: entries[0]!.timeUs - 11 });
  assert.equal(store.partitionsRead, read, 'no block partition was read');
  await store.trimOldest(8);
  const trimmed = store.partitionsRead;
  const outdated = resolveCursor(store, store.trimmedUpTo);
  assert.match(outdated.greeting!().toString(), /resuming from seq 9, the oldest event here/);
  assert.equal(store.partitionsRead, trimmed, 'no block partition was read');
});

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`subscribeEvents (Jetstream v2) over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    let stream: StoredEvent[];
    /** The v2 frames of the whole stream, from an unfiltered replay at seq 0. */
    let frames: string[];

    before(async () => {
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport, hotCacheBytes: 32 * 1024 }));
      pushKnownStream(up, 11);
      await up.settle();
      stream = await readWholeStream(gateway.port);
      const all = await openV2(gateway.port, 'cursor=0');
      await settleSubscribers(gateway, [all]);
      frames = all.texts;
      await all.close();
    });

    afterEach(() => Subscription.closeAll());

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('every event is a message frame built from its v1 event: commit (create, delete), identity, account', () => {
      assert.equal(frames.length, stream.length);
      let previousSeq = 0;
      for (const [i, frame] of frames.entries()) {
        const seq = JSON.parse(frame).payload.seq;
        assert.ok(Number.isSafeInteger(seq) && seq > previousSeq, `seq increases strictly (${previousSeq} → ${seq})`);
        previousSeq = seq;
        assert.equal(frame, v2Expected(stream[i]!.raw, seq), 'the frame, byte for byte');
        assert.deepEqual(v1FromV2(frame), JSON.parse(stream[i]!.raw));
      }
      const kinds = new Set(frames.map((f) => JSON.parse(f).payload.$type));
      assert.deepEqual([...kinds].sort(), [`${NSID}#account`, `${NSID}#commit`, `${NSID}#identity`]);
      const deleted = frames.map((f) => JSON.parse(f).payload).find((p) => p.operation === 'delete');
      assert.ok(deleted && !('record' in deleted) && !('cid' in deleted), 'a delete has no record and no cid');
    });

    test('refusals before the upgrade are XRPC errors: HTTP status, {"error","message"} naming the problem', async () => {
      const tooManyCollections = Array.from({ length: 101 }, (_, i) => `collections=a.b.c${i}`).join('&');
      const cases: Array<[query: string, headers: Record<string, string>, status: number, error: string, mentions: RegExp]> = [
        ['wantedCollections=app.bsky.feed.post', {}, 400, 'InvalidRequest', /wantedCollections.*use collections/],
        [`wantedDids=${ALICE}`, {}, 400, 'InvalidRequest', /wantedDids.*use dids/],
        ['compress=true', {}, 400, 'InvalidRequest', /compress.*zstdDictionary/],
        ['requireHello=true', {}, 400, 'InvalidRequest', /requireHello/],
        ['', { 'socket-encoding': 'zstd' }, 400, 'InvalidRequest', /Socket-Encoding.*zstdDictionary/],
        ['kinds=post', {}, 400, 'InvalidRequest', /kinds: "post"/],
        ['kinds=commit&kinds=identity&kinds=account&kinds=sync&kinds=commit', {}, 400, 'InvalidRequest', /kinds: 5 given, at most 4/],
        ['kinds=identity&collections=app.bsky.feed.post', {}, 400, 'InvalidRequest', /collections.*kinds excludes commit/],
        ['collections=app.bsky.feed.p*st', {}, 400, 'InvalidRequest', /^collections: /],
        [tooManyCollections, {}, 400, 'InvalidRequest', /collections: 101 given, at most 100/],
        ['dids=alice', {}, 400, 'InvalidRequest', /^dids: /],
        ['cursor=abc', {}, 400, 'InvalidRequest', /^cursor: /],
        ['cursor=-5', {}, 400, 'InvalidRequest', /^cursor: /],
        ['cursor=1&cursor=2', {}, 400, 'InvalidRequest', /^cursor: given 2 times/],
        ['maxMessageSizeBytes=junk', {}, 400, 'InvalidRequest', /^maxMessageSizeBytes: /],
        ['maxMessageSizeBytes=4294967296', {}, 400, 'InvalidRequest', /^maxMessageSizeBytes: /],
        ['zstdDictionary=abc', {}, 400, 'InvalidRequest', /^zstdDictionary: /],
        ['zstdDictionary=12345', {}, 400, 'UnknownZstdDictionary', /12345.*current dictionary is \d+/],
        [`zstdDictionary=${await dictionaryId(gateway)}`, { 'sec-websocket-extensions': 'permessage-deflate' }, 400, 'InvalidRequest', /not both/],
      ];
      for (const [query, headers, status, error, mentions] of cases) {
        const reply = await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?${query}`, headers);
        assert.equal(reply.status, status, `${query.slice(0, 80)} → ${status} (got ${reply.status} ${reply.body})`);
        assert.match(String(reply.headers['content-type']), /^application\/json/);
        const body = JSON.parse(reply.body.toString());
        assert.deepEqual(Object.keys(body), ['error', 'message']);
        assert.equal(body.error, error, query.slice(0, 80));
        assert.match(body.message, mentions);
      }
      const noUpgrade = await httpGet(gateway.port, SUBSCRIBE_EVENTS);
      assert.equal(noUpgrade.status, 426);
      assert.equal(JSON.parse(noUpgrade.body.toString()).error, 'InvalidRequest');
      assert.equal((await stats(gateway.port)).subscribers, 0, 'no refused request became a subscriber');
    });

    test('good queries upgrade; xrpc.v1.json is echoed when offered; unknown parameters are ignored', async () => {
      for (const query of ['', 'kinds=commit&collections=app.bsky.feed.*', 'kinds=identity&kinds=account&kinds=sync', 'maxMessageSizeBytes=0', 'cursor=0', 'foo=bar']) {
        assert.equal((await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?${query}`)).status, 101, query);
      }
      const offered = await openV2(gateway.port, '', { protocols: ['xrpc.v1.json'] });
      assert.equal(offered.ws.protocol, 'xrpc.v1.json');
      const none = await openV2(gateway.port, '');
      assert.equal(none.ws.protocol, '');
    });

    test('kinds and maxMessageSizeBytes (which counts the whole v2 frame)', async () => {
      const accounts = await openV2(gateway.port, 'cursor=0&kinds=identity&kinds=account');
      const commits = await openV2(gateway.port, `cursor=0&kinds=commit&collections=${POST}&dids=${ALICE}`);
      const sizes = frames.map((f) => Buffer.byteLength(f));
      const limit = sizes[randomInt(sizes.length)]!;
      const limited = await openV2(gateway.port, `cursor=0&maxMessageSizeBytes=${limit}`);
      await settleSubscribers(gateway, [accounts, commits, limited]);
      assert.deepEqual(accounts.texts, frames.filter((_, i) => stream[i]!.kind !== 'commit'));
      assert.deepEqual(commits.texts, frames.filter((_, i) => stream[i]!.collection === POST && stream[i]!.did === ALICE));
      assert.deepEqual(limited.texts, frames.filter((f) => Buffer.byteLength(f) <= limit));
    });

    test('cursors: a seq and a unix-µs timestamp are inclusive; a future seq starts live after #info FutureCursor', async () => {
      const at = randomInt(1, stream.length - 1);
      const seq = JSON.parse(frames[at]!).payload.seq;
      const bySeq = await openV2(gateway.port, `cursor=${seq}`);
      const byTime = await openV2(gateway.port, `cursor=${stream[at]!.timeUs}`);
      const lastSeq = JSON.parse(frames.at(-1)!).payload.seq;
      const future = await openV2(gateway.port, `cursor=${lastSeq + 1000}`);
      const next = await openV2(gateway.port, `cursor=${lastSeq + 1}`);
      const futureTime = await openV2(gateway.port, `cursor=${Date.now() * 1000 + 3_600_000_000}`);
      await settleSubscribers(gateway, [bySeq, byTime, future, next, futureTime]);
      assert.deepEqual(bySeq.texts, frames.slice(at));
      assert.deepEqual(byTime.texts, frames.slice(at));
      const info = JSON.parse(future.texts[0]!);
      assert.deepEqual(Object.keys(info), ['$type', 'payload']);
      assert.deepEqual(Object.keys(info.payload), ['$type', 'name', 'message']);
      assert.equal(info.payload.$type, `${NSID}#info`);
      assert.equal(info.payload.name, 'FutureCursor');
      assert.equal(future.texts.length, 1);
      assert.deepEqual([next.texts, futureTime.texts], [[], []], 'the next seq and a future time are the live tip, with no notice');

      up.create(BOB, POST);
      await up.settle();
      await settleSubscribers(gateway, [bySeq, future, next, futureTime]);
      const live = bySeq.texts.at(-1)!;
      assert.deepEqual([future.texts.at(-1), next.texts, futureTime.texts], [live, [live], [live]]);
      assert.equal(JSON.parse(live).payload.seq, lastSeq + 1);
      frames.push(live);
      stream.push(...(await readWholeStream(gateway.port)).slice(stream.length));
    });

    test('zstdDictionary: every frame is one binary zstd frame of exactly the text frame; getZstdDictionary serves it', async () => {
      const id = await dictionaryId(gateway);
      const dictionary = await httpGet(gateway.port, `/xrpc/${NSID.replace('subscribeEvents', 'getZstdDictionary')}`);
      assert.equal(dictionary.status, 200);
      assert.equal(dictionary.headers['content-type'], 'application/octet-stream');
      assert.ok(dictionary.body.equals((await httpGet(gateway.port, `/xrpc/network.bsky.jetstream.getZstdDictionary?id=${id}`)).body));
      const unknown = await httpGet(gateway.port, '/xrpc/network.bsky.jetstream.getZstdDictionary?id=7');
      assert.deepEqual([unknown.status, JSON.parse(unknown.body.toString()).error], [400, 'DictionaryNotFound']);
      const bad = await httpGet(gateway.port, '/xrpc/network.bsky.jetstream.getZstdDictionary?id=x');
      assert.deepEqual([bad.status, JSON.parse(bad.body.toString()).error], [400, 'InvalidRequest']);

      const lastSeq = JSON.parse(frames.at(-1)!).payload.seq;
      const compressed = await openV2(gateway.port, `cursor=0&zstdDictionary=${id}`);
      const future = await openV2(gateway.port, `cursor=${lastSeq + 50}&zstdDictionary=${id}`);
      await settleSubscribers(gateway, [compressed, future]);
      const decompressor = new Decompressor();
      decompressor.loadDictionary(dictionary.body);
      const texts = (s: Subscription) =>
        s.messages.map((m) => {
          assert.equal(m.binary, true);
          return decompressor.decompress(m.data).toString();
        });
      assert.deepEqual(texts(compressed), frames);
      assert.equal(JSON.parse(texts(future)[0]!).payload.name, 'FutureCursor', '#info is compressed like events');
    });

    test('a client message of any kind ends the stream with a close reason', async () => {
      for (const message of ['{"type":"options_update","payload":{}}', 'hello']) {
        const s = await openV2(gateway.port, '');
        s.send(message);
        const closed = await s.waitClosed();
        assert.equal(closed.code, 1008);
        assert.match(closed.reason, /no client messages/);
      }
      const binary = await openV2(gateway.port, '');
      binary.send(Buffer.from([1, 2, 3]), true);
      assert.equal((await binary.waitClosed()).code, 1008);
    });

    test('v1 and v2 carry the same events in the same order for random filters and cursors, replay then live', async () => {
      const dids = [ALICE, BOB, CAROL, ...new Set(stream.map((e) => e.did))].slice(0, 8);
      const collections = [POST, LIKE, REPOST, FOLLOW, 'app.bsky.feed.*', 'app.bsky.*'];
      const pick = <T>(from: T[]) => from.filter(() => randomInt(3) === 0);
      const cases: Array<{ filter: FilterSpec; at: number | undefined; bySeq: boolean }> = Array.from({ length: 8 }, () => ({
        filter: { wantedCollections: pick(collections), wantedDids: pick(dids) },
        at: randomInt(4) === 0 ? undefined : randomInt(stream.length),
        bySeq: randomInt(2) === 0,
      }));
      const pairs = await Promise.all(
        cases.map(async ({ filter, at, bySeq }) => {
          const v1Cursor = at === undefined ? undefined : stream[at]!.timeUs;
          const v2Cursor = at === undefined ? undefined : bySeq ? JSON.parse(frames[at]!).payload.seq : stream[at]!.timeUs;
          const v2Query = new URLSearchParams();
          for (const c of filter.wantedCollections!) v2Query.append('collections', c);
          for (const d of filter.wantedDids!) v2Query.append('dids', d);
          if (v2Cursor !== undefined) v2Query.append('cursor', String(v2Cursor));
          return [await Subscription.open(gateway.port, queryFor(filter, { cursor: v1Cursor })), await openV2(gateway.port, v2Query.toString())] as const;
        }),
      );
      for (const [i, collection] of [POST, LIKE, FOLLOW].entries()) up.create(dids[i]!, collection);
      up.identity(dids[3]!);
      up.synthetic(30, 99, 20);
      await up.settle();
      const all = await readWholeStream(gateway.port);
      await settleSubscribers(gateway, pairs.flat());
      for (const [i, [v1, v2]] of pairs.entries()) {
        const { filter, at } = cases[i]!;
        const expected = all.filter((e, n) => n >= (at ?? stream.length) && wants(filter, e)).map((e) => JSON.parse(e.raw));
        assert.deepEqual(v1.events, expected, `v1 with ${JSON.stringify(cases[i])}`);
        assert.deepEqual(v2Events(v2).map((f) => v1FromV2(JSON.stringify(f))), expected, `v2 with ${JSON.stringify(cases[i])}`);
      }
    });
  });

  describe(`subscribeEvents slow consumers over ${transport}`, { skip }, () => {
    test('a v2 subscriber that stops reading gets the ConsumerTooSlow error frame, then a close frame', () =>
      withGateway({ transport }, { hub: { highWaterBytes: 64 * 1024, slowWindowMs: 1500 } }, async ({ gateway, up }) => {
        const slow = await openV2(gateway.port, '');
        tcpSocket(slow).pause();
        await waitUntil(
          async () => {
            // The stream moves on as fast as the gateway stores it, however loaded the machine.
            for (let i = 0; i < 5; i++) up.create(BOB, POST, { ...recordFor(POST, i, BOB), text: 'x'.repeat(50_000) });
            return (await up.settle()).subscribers === 0;
          },
          'the slow subscriber to be dropped',
          120_000, // a hang guard: filling the paused socket's buffers takes longer on a loaded machine
        );
        tcpSocket(slow).resume();
        const closed = await slow.waitClosed();
        assert.equal(closed.code, 1008);
        assert.match(closed.reason, /^ConsumerTooSlow: /);
        const error = JSON.parse(slow.texts.at(-1)!);
        assert.deepEqual(Object.keys(error), ['$type', 'error', 'message']);
        assert.deepEqual([error.$type, error.error, typeof error.message], ['error', 'ConsumerTooSlow', 'string']);
        for (const text of slow.texts.slice(0, -1)) assert.equal(JSON.parse(text).$type, 'message');
      }));
  });

  describe(`subscribeEvents cursors against retention over ${transport}`, { skip }, () => {
    test('a seq older than the buffer is CursorTooOld naming the oldest seq; an old timestamp clamps after #info OutdatedCursor', () =>
      withGateway({ transport }, {}, async (h) => {
        for (let i = 0; i < 30; i++) h.up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: 'x'.repeat(10_000) });
        await h.up.settle();
        const before = await readWholeStream(h.gateway.port);
        await h.gateway.stop();
        // Restarted with a size bound the old events exceed: retention trims the oldest at start,
        // keeping the newest that fit (never none).
        h.gateway = await startTestGateway(h.relay.url, h.dir.path, { transport, maxBufferBytes: 64 * 1024 });
        await h.relay.waitForConnections(2);
        let left = 30;
        await waitUntil(async () => {
          const now = await stats(h.gateway.port);
          left = now.eventCount;
          return now.bytes <= 64 * 1024;
        }, 'retention to trim the buffer to the bound');
        assert.ok(left >= 1 && left < 30, `${left} events left`);
        const oldestSeq = 31 - left;
        h.up.create(BOB, POST);
        h.up.create(BOB, LIKE);
        await h.up.settle();

        const tooOld = await upgradeRequest(h.gateway.port, `${SUBSCRIBE_EVENTS}?cursor=5`);
        assert.equal(tooOld.status, 400);
        const body = JSON.parse(tooOld.body.toString());
        assert.equal(body.error, 'CursorTooOld');
        assert.match(body.message, new RegExp(`the oldest seq here is ${oldestSeq}\\b`));

        const oldest = await openV2(h.gateway.port, `cursor=${oldestSeq}`);
        const outdated = await openV2(h.gateway.port, `cursor=${before[3]!.timeUs}`);
        await waitUntil(() => oldest.messages.length === left + 2 && outdated.messages.length === left + 3, 'the kept events');
        const info = JSON.parse(outdated.texts[0]!).payload;
        assert.equal(info.name, 'OutdatedCursor');
        assert.match(info.message, new RegExp(`resuming from seq ${oldestSeq}\\b`));
        assert.deepEqual(outdated.texts.slice(1), oldest.texts);
        assert.deepEqual(
          oldest.texts.map((t) => JSON.parse(t).payload.seq),
          Array.from({ length: left + 2 }, (_, i) => oldestSeq + i),
        );
      }));
  });
}
