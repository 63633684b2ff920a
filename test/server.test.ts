/**
 * /subscribe, the Jetstream v1 wire, against a real gateway (FakeRelay → ingest → LMDB →
 * server) on 127.0.0.1, once per transport: query parameters and their bad values, filters,
 * cursors, options_update, requireHello, client messages, zstd, and the plain HTTP routes.
 * Expected results come from an independent brute-force filter over the stored stream.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { DEFAULT_DICTIONARY } from '../src/config.ts';
import type { Gateway } from '../src/gateway.ts';
import { seriesValue } from './support/exposition.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { V1_DICTIONARY, v1DictionarySkipReason } from './support/fixtures.ts';
import type { tempDir } from './support/gateway.ts';
import {
  ALICE,
  BOB,
  CAROL,
  FOLLOW,
  LIKE,
  POST,
  REPOST,
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
  storedEvent,
  testDid,
  upgradeRequest,
  waitUntil,
  wants,
  type FilterSpec,
  type StoredEvent,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const WEB = 'did:web:example.com';
const BLOCK = 'app.bsky.graph.block';
const VOTE = 'fyi.unravel.frontpage.vote';

const V1_DICTIONARY_ID = 1612007021;

/** Every kind of event from four accounts, a multi-op commit, a large post, then synthetic volume. */
function pushKnownStream(up: Upstream, seed: number): void {
  const collections = [POST, LIKE, REPOST, FOLLOW, BLOCK, VOTE];
  for (let round = 0; round < 2; round++) {
    for (const [i, account] of [ALICE, BOB, CAROL, WEB].entries()) {
      for (const collection of collections) up.create(account, collection);
      up.commit(account, [{ collection: LIKE, action: 'delete' }]);
      if (round === 0) up.identity(account, `user${i}.bsky.social`);
      else up.account(account, i % 2 === 0, i % 2 === 0 ? undefined : 'deactivated');
    }
  }
  up.commit(ALICE, [{ collection: POST }, { collection: POST }, { collection: FOLLOW }]);
  up.create(BOB, POST, { ...recordFor(POST, 1, BOB), text: 'long '.repeat(600) });
  up.synthetic(300, seed);
}

function decompressAll(messages: Subscription['messages'], dictionary: Buffer): string[] {
  const decompressor = new Decompressor();
  decompressor.loadDictionary(dictionary);
  return messages.map((m) => {
    assert.equal(m.binary, true, 'a compressed subscriber gets binary frames only');
    return decompressor.decompress(m.data).toString('utf8');
  });
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`/subscribe over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    /** The stored stream after pushKnownStream. */
    let stream: StoredEvent[];

    before(async () => {
      // A small hot log, so replays from cursor=0 read LMDB and the live tip reads memory.
      // Connected before the first frame: the gateway's first connection has no cursor, so frames before it are not replayed.
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport, hotCacheBytes: 32 * 1024 }));
      assert.equal(gateway.server.transport, transport);
      pushKnownStream(up, 7);
      await up.settle();
      stream = await readWholeStream(gateway.port);
      assert.ok(stream.length > 350, `the known stream was stored (${stream.length} events)`);
    });

    afterEach(() => Subscription.closeAll());

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('plain HTTP routes: /, /health, /ready, /stats, /dictionary, and /subscribe without an upgrade', async () => {
      const home = await httpGet(gateway.port, '/');
      assert.equal(home.status, 200);
      assert.match(home.body.toString(), /\/subscribe/);
      assert.equal((await httpGet(gateway.port, '/health')).status, 200);
      await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready once the upstream is connected');
      const s = await stats(gateway.port);
      assert.equal(s.eventCount, stream.length);
      assert.equal(s.oldestTimeUs, stream[0]!.timeUs);
      assert.equal(s.newestTimeUs, stream.at(-1)!.timeUs);

      const dictionary = await httpGet(gateway.port, '/dictionary');
      assert.equal(dictionary.status, 200);
      const ours = readFileSync(DEFAULT_DICTIONARY);
      assert.ok(dictionary.body.equals(ours), 'GET /dictionary serves the active dictionary byte for byte');
      const id = binding.getDictIDFromDict(ours);
      assert.ok(id > 0);
      assert.equal(dictionary.headers['x-zstd-dictionary-id'], String(id));

      const noUpgrade = await httpGet(gateway.port, '/subscribe');
      assert.equal(noUpgrade.status, 426);
      assert.equal((await httpGet(gateway.port, '/no-such-page')).status, 404);
    });

    test('bad query values get HTTP 400 before the upgrade, with a plain-text reason naming the parameter', async () => {
      const tooManyCollections = Array.from({ length: 101 }, (_, i) => `wantedCollections=a.b.c${i}`).join('&');
      const cases: Array<[query: string, parameter: string]> = [
        ['wantedCollections=app.bsky.feed.p*st', 'wantedCollections'],
        ['wantedCollections=app.bsky.graph.fo*', 'wantedCollections'],
        ['wantedCollections=*', 'wantedCollections'],
        ['wantedCollections=.*', 'wantedCollections'],
        ['wantedCollections=', 'wantedCollections'],
        // Comma lists are not split (Jetstream neither): the whole value is not an NSID.
        ['wantedCollections=app.bsky.feed.post,app.bsky.feed.like', 'wantedCollections'],
        // One bad value among repeated good ones.
        [`wantedCollections=${POST}&wantedCollections=nope`, 'wantedCollections'],
        [tooManyCollections, 'wantedCollections'],
        ['wantedDids=alice', 'wantedDids'],
        ['wantedDids=did:plc:', 'wantedDids'],
        [`wantedDids=${ALICE}&wantedDids=at://${BOB}`, 'wantedDids'],
        ['cursor=abc', 'cursor'],
        ['cursor=1.5', 'cursor'],
        ['cursor=1e15', 'cursor'],
        ['cursor=12abc', 'cursor'],
        ['cursor=99999999999999999999', 'cursor'], // past int64: Jetstream v1's ParseInt refuses it too
      ];
      for (const [query, parameter] of cases) {
        const reply = await upgradeRequest(gateway.port, `/subscribe?${query}`);
        const body = reply.body.toString();
        assert.equal(reply.status, 400, `${query.slice(0, 80)} → 400 (got ${reply.status} ${body})`);
        assert.match(String(reply.headers['content-type']), /^text\/plain/);
        assert.ok(body.startsWith(`${parameter}:`), `the reason names ${parameter}: ${body}`);
      }
      assert.equal((await stats(gateway.port)).subscribers, 0, 'no refused request became a subscriber');
    });

    test('good and unknown query values upgrade (101)', async () => {
      const hundred = Array.from({ length: 100 }, (_, i) => `wantedCollections=a.b.c${i}`);
      const cases = [
        'foo=bar&maxSize=5', // unknown parameters (the Go client's maxSize) are ignored
        'cursor=',
        'cursor=-5',
        'compress=false&requireHello=false',
        'compress=true',
        'compress=1&requireHello=on', // Jetstream v1: anything but `true` is false
        'compress=yes&requireHello=TRUE',
        'maxMessageSizeBytes=junk',
        'maxMessageSizeBytes=0',
        'maxMessageSizeBytes=-10',
        'maxMessageSizeBytes=99999999999999999999',
        hundred.join('&'),
        [...hundred, 'wantedCollections=a.b.c0', 'wantedCollections=a.b.c1'].join('&'), // 100 after de-duplication
        'wantedCollections=app.bsky.feed.*&wantedCollections=app.*',
        `wantedDids=${ALICE}&wantedDids=${WEB}`, // raw, as the Go client sends them
        `wantedDids=${encodeURIComponent(ALICE)}&wantedCollections=${encodeURIComponent('app.bsky.feed.*')}`, // percent-encoded
      ];
      for (const query of cases) {
        const reply = await upgradeRequest(gateway.port, `/subscribe?${query}`);
        assert.equal(reply.status, 101, `${query.slice(0, 80)} upgrades (got ${reply.status} ${reply.body})`);
      }
    });

    test('filters: each subscriber gets exactly the matching events in order, replayed from cursor=0 and then live', async () => {
      const filters: FilterSpec[] = [
        {},
        { wantedCollections: [POST] },
        { wantedCollections: [POST, LIKE] }, // repeated keys
        { wantedCollections: ['app.bsky.feed.*'] },
        { wantedCollections: ['app.bsky.*'] },
        { wantedCollections: ['app.bsky.feed.*', POST, 'app.bsky.*'] }, // overlapping: no event twice
        { wantedCollections: [VOTE] },
        { wantedCollections: ['com.example.nothing'] }, // only identity and account events pass
        { wantedDids: [ALICE] }, // every kind, for one account
        { wantedDids: [ALICE, BOB], wantedCollections: [LIKE, 'app.bsky.graph.*', FOLLOW] },
        { wantedDids: [WEB, WEB, CAROL] },
        { wantedCollections: [POST], maxMessageSizeBytes: 400 },
        { maxMessageSizeBytes: 1000 },
      ];
      const subscriptions: Subscription[] = [];
      for (const filter of filters) subscriptions.push(await Subscription.open(gateway.port, queryFor(filter, { cursor: 0 })));
      await settleSubscribers(gateway, subscriptions);
      // Now all are at the tip: the same stream again, through the live index.
      pushKnownStream(up, 8);
      await up.settle();
      const all = await readWholeStream(gateway.port);
      stream = all;
      await settleSubscribers(gateway, subscriptions);
      for (const [i, filter] of filters.entries()) {
        const expected = all.filter((e) => wants(filter, e)).map((e) => e.raw);
        assert.ok(expected.length > 0, `the stream has events for ${JSON.stringify(filter)}`);
        assert.ok(expected.length < all.length || i === 0, `${JSON.stringify(filter)} filters something out`);
        assert.deepEqual(subscriptions[i]!.texts, expected, `filter ${JSON.stringify(filter)}`);
        await subscriptions[i]!.close();
      }
      // The size limit is measured on the JSON bytes and skips the large post.
      assert.ok(all.some((e) => e.collection === POST && Buffer.byteLength(e.raw) > 400));
    });

    test('cursor: inclusive; between events; 0, negative and too old = from the oldest', async () => {
      // An event followed by a gap, so that cursor+1 falls between two events.
      const k = stream.findIndex((e, i) => i >= 100 && stream[i + 1]!.timeUs > e.timeUs + 1);
      const at = stream[k]!.timeUs;
      const cases: Array<[cursor: number, from: number]> = [
        [at, k], // inclusive: the event at the cursor is sent again
        [at + 1, k + 1],
        [0, 0],
        [-1, 0],
        [1, 0],
        [stream[0]!.timeUs - 1_000_000, 0],
      ];
      const subscriptions = await Promise.all(cases.map(([cursor]) => Subscription.open(gateway.port, `cursor=${cursor}`)));
      await settleSubscribers(gateway, subscriptions);
      for (const [i, [cursor, from]] of cases.entries()) {
        assert.deepEqual(subscriptions[i]!.texts, stream.slice(from).map((e) => e.raw), `cursor=${cursor}`);
        await subscriptions[i]!.close();
      }
    });

    test('cursor in the future, after the newest stored event, or absent = live from connect time', async () => {
      const { newestTimeUs } = await stats(gateway.port);
      const queries = [`cursor=${(Date.now() + 3_600_000) * 1000}`, `cursor=${newestTimeUs! + 1}`, '', 'cursor='];
      const subscriptions = await Promise.all(queries.map((q) => Subscription.open(gateway.port, q)));
      await Promise.all(subscriptions.map((s) => s.roundTrip()));
      for (const s of subscriptions) assert.equal(s.messages.length, 0, 'nothing from before the connection (Jetstream v1 replayed it all here)');
      up.create(ALICE, POST);
      up.identity(BOB, 'bob.bsky.social');
      up.create(CAROL, LIKE);
      const { newestTimeUs: newest } = await up.settle();
      const fresh = (await readWholeStream(gateway.port)).filter((e) => e.timeUs > newestTimeUs!);
      assert.equal(fresh.length, 3);
      for (const [i, s] of subscriptions.entries()) {
        await s.waitForTime(newest!);
        assert.deepEqual(s.texts, fresh.map((e) => e.raw), `live subscriber ${queries[i] || '(no cursor)'}`);
        await s.close();
      }
    });

    test('options_update replaces both filters on the open connection, and may set maxMessageSizeBytes', async () => {
      const s = await Subscription.open(gateway.port, `wantedCollections=${POST}`);
      let seen = 0;
      let since = (await stats(gateway.port)).newestTimeUs!;
      /** Pushes a batch ending in an event the current filter wants, and checks what arrived. */
      const batch = async (filter: FilterSpec, push: () => void) => {
        push();
        const { newestTimeUs } = await up.settle();
        const expected = (await readWholeStream(gateway.port)).filter((e) => e.timeUs > since && wants(filter, e));
        assert.equal(expected.at(-1)?.timeUs, newestTimeUs, 'the batch ends with a wanted event');
        await s.waitForTime(newestTimeUs!);
        assert.deepEqual(s.texts.slice(seen), expected.map((e) => e.raw), `after update to ${JSON.stringify(filter)}`);
        seen = s.messages.length;
        since = newestTimeUs!;
      };
      const update = async (payload: object) => {
        s.send(JSON.stringify({ type: 'options_update', payload }));
        await s.roundTrip(); // the server has applied it
      };

      await batch({ wantedCollections: [POST] }, () => {
        up.create(BOB, LIKE);
        up.identity(CAROL, 'carol.bsky.social');
        up.create(ALICE, POST);
      });
      await update({ wantedCollections: [LIKE], wantedDids: [BOB] });
      await batch({ wantedCollections: [LIKE], wantedDids: [BOB] }, () => {
        up.create(ALICE, POST);
        up.create(ALICE, LIKE);
        up.identity(CAROL, 'carol.bsky.social');
        up.identity(BOB, 'bob.bsky.social');
        up.create(BOB, POST);
        up.create(BOB, LIKE);
      });
      // A missing key clears that filter: only wantedDids now, so every collection of ALICE's.
      await update({ wantedDids: [ALICE] });
      await batch({ wantedDids: [ALICE] }, () => {
        up.create(BOB, LIKE);
        up.create(ALICE, FOLLOW);
        up.account(BOB, true);
        up.create(ALICE, REPOST);
      });
      // An empty payload (what @atcute/jetstream sends without filters) means no filter at all.
      await update({});
      await batch({}, () => {
        up.create(CAROL, VOTE);
        up.account(WEB, false, 'takendown');
        up.create(BOB, BLOCK);
      });
      await update({ wantedCollections: [], wantedDids: [], maxMessageSizeBytes: 400 });
      await batch({ maxMessageSizeBytes: 400 }, () => {
        up.create(BOB, POST, { ...recordFor(POST, 2, BOB), text: 'long '.repeat(200) });
        up.create(CAROL, POST);
      });
      assert.equal(s.closeInfo, undefined, 'never reconnected');
      await s.close();
    });

    test('an options_update without maxMessageSizeBytes keeps the limit in force (Jetstream v1 keeps the URL\'s)', async () => {
      const s = await Subscription.open(gateway.port, `maxMessageSizeBytes=800&wantedDids=${BOB}`);
      const push = () => {
        up.create(BOB, POST, { ...recordFor(POST, 3, BOB), text: 'long '.repeat(200) });
        up.create(BOB, LIKE);
      };
      s.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [BOB] } }));
      await s.roundTrip();
      push();
      let { newestTimeUs } = await up.settle();
      await s.waitForTime(newestTimeUs!);
      assert.deepEqual(s.events.map((e) => e.commit.collection), [LIKE], 'the URL limit still skips the long post');
      s.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [BOB], maxMessageSizeBytes: 0 } }));
      await s.roundTrip();
      push();
      ({ newestTimeUs } = await up.settle());
      await s.waitForTime(newestTimeUs!);
      assert.deepEqual(s.events.map((e) => e.commit.collection), [LIKE, POST, LIKE], 'maxMessageSizeBytes: 0 lifts it');
    });

    test('compress and requireHello are true only when exactly "true", as in Jetstream v1', async () => {
      const { newestTimeUs: before } = await stats(gateway.port);
      const queries = ['compress=1&requireHello=1', 'compress=TRUE&requireHello=yes', 'compress=true&requireHello=True'];
      const subscriptions = await Promise.all(queries.map((q) => Subscription.open(gateway.port, `${q}&cursor=${before! + 1}`)));
      await Promise.all(subscriptions.map((s) => s.roundTrip()));
      up.create(CAROL, POST);
      const { newestTimeUs } = await up.settle();
      await subscriptions[0]!.waitForTime(newestTimeUs!);
      await subscriptions[1]!.waitForTime(newestTimeUs!);
      await subscriptions[2]!.waitForCount(1);
      for (const s of subscriptions.slice(0, 2)) assert.deepEqual(s.events.map((e) => e.time_us), [newestTimeUs], 'JSON text frames, no hello needed');
      assert.equal(subscriptions[2]!.messages[0]!.binary, true, 'compress=true compresses');
    });

    test('requireHello: nothing is sent before the first valid options_update; events since connect time then arrive', async () => {
      const hello = await Subscription.open(gateway.port, `requireHello=true&wantedCollections=${LIKE}`);
      const helloWithCursor = await Subscription.open(gateway.port, `requireHello=true&cursor=${stream[50]!.timeUs}`);
      const control = await Subscription.open(gateway.port, '');
      up.create(ALICE, POST);
      up.create(BOB, LIKE);
      up.identity(CAROL, 'carol.bsky.social');
      up.create(ALICE, POST);
      const { newestTimeUs } = await up.settle();
      await control.waitForTime(newestTimeUs!);
      // Unknown message types are not a hello.
      hello.send(JSON.stringify({ type: 'hello', payload: {} }));
      await Promise.all([hello.roundTrip(), helloWithCursor.roundTrip()]);
      assert.equal(hello.messages.length, 0, 'nothing before the hello');
      assert.equal(helloWithCursor.messages.length, 0, 'nothing before the hello, even with a cursor');

      // The hello's filter replaces the query's.
      hello.send(JSON.stringify({ type: 'options_update', payload: { wantedCollections: [POST] } }));
      helloWithCursor.send(JSON.stringify({ type: 'options_update', payload: {} }));
      await hello.waitForTime(newestTimeUs!);
      const sinceConnect = control.texts.map(storedEvent);
      assert.deepEqual(hello.texts, sinceConnect.filter((e) => wants({ wantedCollections: [POST] }, e)).map((e) => e.raw));
      assert.equal(hello.texts.length, 3, 'two posts and the identity event');
      await helloWithCursor.waitForTime(newestTimeUs!);
      const all = await readWholeStream(gateway.port);
      assert.deepEqual(helloWithCursor.texts, all.filter((e) => e.timeUs >= stream[50]!.timeUs).map((e) => e.raw));

      // And then it is an ordinary live subscriber.
      up.create(CAROL, POST);
      const { newestTimeUs: newest } = await up.settle();
      await hello.waitForTime(newest!);
      assert.equal(hello.texts.length, 4);
      for (const s of [hello, helloWithCursor, control]) await s.close();
    });

    test('invalid client messages close the connection with a code and a reason', async () => {
      const collections = (n: number) => Array.from({ length: n }, (_, i) => `a.b.c${i}`);
      const update = (payload: unknown) => JSON.stringify({ type: 'options_update', payload });
      const cases: Array<[message: string | Buffer, code: number, reason: RegExp, query?: string]> = [
        ['{not json', 1007, /JSON/],
        ['[]', 1008, /object/],
        ['"options_update"', 1008, /object/],
        ['null', 1008, /object/],
        ['{"type":"options_update"}', 1008, /payload/],
        [update([]), 1008, /payload/],
        [update('x'), 1008, /payload/],
        [update({ wantedCollections: POST }), 1008, /wantedCollections/],
        [update({ wantedCollections: ['not an nsid'] }), 1008, /wantedCollections/],
        [update({ wantedCollections: collections(101) }), 1008, /wantedCollections/],
        [update({ wantedDids: ['alice'] }), 1008, /wantedDids/],
        [update({ wantedDids: [42] }), 1008, /wantedDids/],
        [update({ wantedDids: ALICE }), 1008, /wantedDids/],
        [update({ wantedDids: ['alice'] }), 1008, /wantedDids/, 'requireHello=true'],
        // A reason longer than a close frame allows is cut to 123 bytes, not dropped.
        [update({ wantedDids: [`did:plc:${'é'.repeat(300)}`] }), 1008, /^invalid options_update: wantedDids/],
      ];
      for (const [message, code, reason, query] of cases) {
        const s = await Subscription.open(gateway.port, query);
        s.send(message, Buffer.isBuffer(message));
        const closed = await s.waitClosed();
        const label = String(message).slice(0, 60);
        assert.equal(closed.code, code, `${label} → close ${code} (got ${closed.code} ${closed.reason})`);
        assert.match(closed.reason, reason, label);
        assert.ok(Buffer.byteLength(closed.reason) <= 123, 'the reason fits a close frame');
      }
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 0, 'the closed subscribers to be gone');
    });

    test('unknown message types, messages without a type and binary messages are ignored (as in Jetstream v1)', async () => {
      const s = await Subscription.open(gateway.port, `wantedDids=${CAROL}`);
      for (const message of [{ type: 'heartbeat' }, { type: 'options_update_v2', payload: {} }, {}, { payload: { wantedDids: [] } }]) {
        s.send(JSON.stringify(message));
      }
      s.send(Buffer.from(JSON.stringify({ type: 'options_update', payload: {} })), true);
      s.send(Buffer.from([0xff, 0x00, 0x80]), true);
      await s.roundTrip();
      assert.ok(s.isOpen);
      up.create(ALICE, POST);
      up.create(CAROL, POST);
      const { newestTimeUs } = await up.settle();
      await s.waitForTime(newestTimeUs!);
      assert.equal(s.events.length, 1, 'still filtered by the query');
      assert.equal(s.events[0]!.did, CAROL);
      await s.close();
    });

    test('client messages up to 10 MB are read; a larger one closes the connection', async () => {
      const s = await Subscription.open(gateway.port, 'requireHello=true');
      // Unknown payload keys are ignored: padding makes a 9 MB options_update.
      s.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [CAROL], padding: 'x'.repeat(9 * 1024 * 1024) } }));
      up.create(ALICE, POST);
      up.create(CAROL, LIKE);
      const { newestTimeUs } = await up.settle();
      await s.waitForTime(newestTimeUs!);
      assert.deepEqual(s.events.map((e) => e.did), [CAROL], 'the 9 MB hello was applied');
      s.send(JSON.stringify({ type: 'options_update', payload: { padding: 'x'.repeat(10 * 1024 * 1024) } }));
      const closed = await s.waitClosed();
      // `ws` answers 1009 Message Too Big; uWS drops the TCP connection without a close frame.
      assert.equal(closed.code, transport === 'ws' ? 1009 : 1006, `too big: ${JSON.stringify(closed)}`);
    });

    test('limits: 10,000 DIDs and 100 collections after de-duplication, by options_update', async () => {
      const many = Array.from({ length: 9_999 }, (_, i) => testDid(`x${String(i).padStart(5, '0')}`));
      const dids = [...many, ALICE, ...many.slice(0, 500)]; // 10,000 distinct
      const collections = [...Array.from({ length: 99 }, (_, i) => `a.b.c${i}`), POST, 'a.b.c0'];
      const s = await Subscription.open(gateway.port, 'requireHello=true');
      s.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: dids, wantedCollections: collections } }));
      await s.roundTrip();
      assert.ok(s.isOpen, 'a 10,000-DID, 100-collection update is accepted');
      up.create(BOB, POST);
      up.create(ALICE, LIKE);
      up.create(ALICE, POST);
      const { newestTimeUs } = await up.settle();
      await s.waitForTime(newestTimeUs!);
      assert.deepEqual(
        s.events.map((e) => [e.did, e.commit.collection]),
        [[ALICE, POST]],
      );
      s.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [...dids, testDid('one-too-many')] } }));
      const closed = await s.waitClosed();
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /wantedDids: 10001 given, at most 10000/);
    });

    test('compressed frames (compress=true or Socket-Encoding: zstd) decode with the served dictionary to the exact JSON', async () => {
      const plain = await Subscription.open(gateway.port, 'cursor=0');
      const byQuery = await Subscription.open(gateway.port, 'cursor=0&compress=true');
      const byHeader = await Subscription.open(gateway.port, 'cursor=0', { headers: { 'Socket-Encoding': 'gzip, zstd' } });
      // maxMessageSizeBytes counts JSON bytes, not compressed bytes.
      const limit = 500;
      const limited = await Subscription.open(gateway.port, `cursor=0&compress=true&maxMessageSizeBytes=${limit}&wantedCollections=${POST}`);
      await settleSubscribers(gateway, [plain, byQuery, byHeader, limited]);

      const served = await httpGet(gateway.port, '/dictionary');
      const dictionaryId = Number(served.headers['x-zstd-dictionary-id']);
      const all = await readWholeStream(gateway.port);
      assert.deepEqual(plain.texts, all.map((e) => e.raw));
      assert.ok(plain.messages.every((m) => !m.binary), 'uncompressed events are text frames');
      for (const s of [byQuery, byHeader]) {
        assert.equal(s.messages.length, all.length);
        for (const m of s.messages) assert.equal(binding.getDictIDFromFrame(m.data), dictionaryId, 'the frame header names the dictionary');
        assert.deepEqual(decompressAll(s.messages, served.body), plain.texts);
        assert.ok(
          s.messages.reduce((n, m) => n + m.data.byteLength, 0) < plain.messages.reduce((n, m) => n + m.data.byteLength, 0) / 2,
          'compression at least halves the bytes',
        );
      }
      assert.throws(() => new Decompressor().decompress(byQuery.messages[0]!.data), 'a frame needs the dictionary to decode');
      assert.ok(byQuery.messages.every((m, i) => m.data.equals(byHeader.messages[i]!.data)), 'every compressed subscriber gets the same bytes');

      const expected = all.filter((e) => wants({ wantedCollections: [POST], maxMessageSizeBytes: limit }, e)).map((e) => e.raw);
      assert.deepEqual(decompressAll(limited.messages, served.body), expected);
      assert.ok(
        all.some((e) => e.collection === POST && Buffer.byteLength(e.raw) > limit && byQuery.messages[all.indexOf(e)]!.data.byteLength <= limit),
        'some post is over the limit as JSON but under it compressed',
      );
      for (const s of [plain, byQuery, byHeader, limited]) await s.close();
    });

    test('Prometheus metrics: subscribers by wire, compression and mode, events sent, skips, connections and disconnects', async () => {
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 0, 'earlier tests’ subscribers to be gone');
      const scrape = async () => {
        const samples = new Map<string, number>();
        for (const line of (await httpGet(gateway.metricsPort, '/metrics')).body.toString().split('\n')) {
          const at = line.lastIndexOf(' ');
          if (line.startsWith('contrail_')) samples.set(line.slice(0, at), Number(line.slice(at + 1)));
        }
        return samples;
      };
      const before = await scrape();
      const plain = await Subscription.open(gateway.port, '');
      const zstd = await Subscription.open(gateway.port, 'compress=true&maxMessageSizeBytes=400');
      const waiting = await Subscription.open(gateway.port, 'requireHello=true');
      await upgradeRequest(gateway.port, '/subscribe?cursor=bad');
      up.create(ALICE, POST, { ...recordFor(POST, 3, ALICE), text: 'long '.repeat(100) }); // over 400 bytes
      up.identity(BOB, 'bob.bsky.social');
      const { newestTimeUs } = await up.settle();
      await plain.waitForTime(newestTimeUs!);
      await zstd.waitForCount(1);
      const during = await scrape();
      waiting.send('not json');
      await waiting.waitClosed();
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 2, 'the closed subscriber to be gone');
      const after = await scrape();
      const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
      const bytes = (s: Subscription) => s.messages.reduce((n, m) => n + m.data.byteLength, 0);

      assert.equal(during.get('contrail_subscribers{wire="v1",compression="none",mode="live"}'), 1);
      assert.equal(during.get('contrail_subscribers{wire="v1",compression="zstd",mode="live"}'), 1);
      assert.equal(during.get('contrail_subscribers{wire="v1",compression="none",mode="hello"}'), 1);
      assert.equal(delta('contrail_events_sent_total{wire="v1",compression="none"}'), 2);
      assert.equal(delta('contrail_bytes_sent_total{wire="v1",compression="none"}'), bytes(plain));
      assert.equal(delta('contrail_events_sent_total{wire="v1",compression="zstd"}'), 1);
      assert.equal(delta('contrail_bytes_sent_total{wire="v1",compression="zstd"}'), bytes(zstd));
      assert.equal(delta('contrail_events_skipped_total{reason="max_message_size"}'), 1);
      assert.equal(delta('contrail_subscriber_connections_total{wire="v1",result="accepted"}'), 3);
      assert.equal(delta('contrail_subscriber_connections_total{wire="v1",result="bad_request"}'), 1);
      assert.equal(delta('contrail_subscriber_disconnects_total{reason="bad_message"}'), 1);
    });

    test('events skipped for maxMessageSizeBytes are counted only when the filter wants them, in replay as live', async () => {
      const skipped = async () => seriesValue((await httpGet(gateway.metricsPort, '/metrics')).body.toString(), 'contrail_events_skipped_total{reason="max_message_size"}');
      const filter: FilterSpec = { wantedCollections: [VOTE], maxMessageSizeBytes: 300 };
      const tooLarge = (e: StoredEvent) => Buffer.byteLength(e.raw) > filter.maxMessageSizeBytes!;
      const wantedButTooLarge = (events: StoredEvent[]) => events.filter((e) => wants({ wantedCollections: [VOTE] }, e) && tooLarge(e)).length;
      const all = await readWholeStream(gateway.port);
      assert.ok(wantedButTooLarge(all) > 0 && wantedButTooLarge(all) < all.filter(tooLarge).length, 'the stream tells the two counts apart');

      const before = await skipped();
      const s = await Subscription.open(gateway.port, queryFor(filter, { cursor: 0 }));
      await settleSubscribers(gateway, [s]);
      assert.equal((await skipped()) - before, wantedButTooLarge(all), 'replay');

      const big = { ...recordFor(VOTE, 1, ALICE), padding: 'p'.repeat(400) };
      up.create(ALICE, VOTE, big);
      up.create(ALICE, POST, { ...recordFor(POST, 1, ALICE), text: 'p'.repeat(400) });
      up.identity(BOB, 'bob.bsky.social');
      const { newestTimeUs } = await up.settle();
      await s.waitForTime(newestTimeUs!);
      assert.equal((await skipped()) - before, wantedButTooLarge(all) + 1, 'live: the large vote, not the large post');
    });
  });

  // Skipped test by test (not as a whole group) so the run's summary counts them as skipped.
  const v1Missing = v1DictionarySkipReason();
  describe(`/subscribe over ${transport} with Jetstream v1's zstd dictionary`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;

    before(async () => {
      if (v1Missing) return;
      ({ relay, dir, gateway } = await startRelayGateway({ transport, zstdDictionary: V1_DICTIONARY }));
    });

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('frames decode in a client that embeds the v1 dictionary, and carry its ID 1612007021', { skip: v1Missing }, async () => {
      const v1 = readFileSync(V1_DICTIONARY);
      assert.equal(binding.getDictIDFromDict(v1), V1_DICTIONARY_ID);
      const served = await httpGet(gateway.port, '/dictionary');
      assert.ok(served.body.equals(v1), 'GET /dictionary serves the v1 dictionary');
      assert.equal(served.headers['x-zstd-dictionary-id'], String(V1_DICTIONARY_ID));

      // Live subscribers, as Jetstream's Go client connects (header) and as others do (query).
      const plain = await Subscription.open(gateway.port, '');
      const byHeader = await Subscription.open(gateway.port, '', { headers: { 'Socket-Encoding': 'zstd' } });
      const byQuery = await Subscription.open(gateway.port, 'compress=true');
      const up = new Upstream(relay, () => gateway.port);
      up.synthetic(200, 11);
      const { newestTimeUs } = await up.settle();
      await plain.waitForTime(newestTimeUs!);
      await Promise.all([byHeader, byQuery].map((s) => s.waitForCount(plain.messages.length)));
      for (const s of [byHeader, byQuery]) {
        for (const m of s.messages) assert.equal(binding.getDictIDFromFrame(m.data), V1_DICTIONARY_ID);
        assert.deepEqual(decompressAll(s.messages, v1), plain.texts); // v1 read from ../shared, not from the server
      }
      for (const s of [plain, byHeader, byQuery]) await s.close();
    });
  });
}
