// Real Jetstream clients against contrail fed by a real PDS: @atcute/jetstream (event validation
// on) and @skyware/jetstream, used as their READMEs show them, live and from a cursor, with
// wantedCollections (exact and prefix) and wantedDids. This contrail runs the `ws` transport,
// so between this file and gateway.test.mjs (default: uWebSockets.js) both transports meet
// real traffic.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SENTINEL_COLLECTION, createAccounts, phaseOne } from './lib/activity.mjs';
import { atcuteClient, skywareClient } from './lib/clients.mjs';
import { assertEventsMatch, assertStreamInvariants, wants } from './lib/expect.mjs';
import { startStack } from './lib/stack.mjs';
import { RawSubscriber, fetchDictionary, subscribeUrl } from './lib/subscribe.mjs';

const isSentinel = (phase) => (event) =>
  event.kind === 'commit' && event.commit.collection === SENTINEL_COLLECTION && event.commit.rkey === `sentinel-${phase}`;

describe('real Jetstream clients against contrail and a real PDS', { timeout: 150_000 }, () => {
  let stack;
  let act;
  let users;
  const live = {};
  const closers = [];
  /** time_us of the first event: the cursor the replaying clients start from. */
  let firstCursor;

  before(async () => {
    stack = await startStack({ contrailArgs: ['--transport', 'ws'] });
    act = stack.act;
    const base = stack.contrail.wsUrl;
    // Live clients, connected before anything is written. atcute's default cursor is "now".
    live.atcute = atcuteClient(base);
    live.skyware = skywareClient(`${base}/subscribe`);
    // And a compressed raw subscriber, so the ws transport's zstd path meets real traffic too.
    const dictionary = await fetchDictionary(stack.contrail.httpUrl);
    live.zstd = new RawSubscriber(subscribeUrl(base, { compress: true }), { dictionary: dictionary.bytes });
    closers.push(() => live.atcute.close(), () => live.skyware.close(), () => live.zstd.close());
    await Promise.all([live.atcute.open, live.skyware.open, live.zstd.opened]);
    users = await createAccounts(act);
    await phaseOne(act);
  });

  after(async () => {
    for (const close of closers) await close();
    await stack?.close();
  });

  test('@atcute/jetstream, live: every event, validated, in order', async () => {
    const events = await live.atcute.readUntil(isSentinel(1), 'sentinel 1');
    assert.deepEqual(live.atcute.validationErrors, [], 'atcute rejected nothing');
    assertEventsMatch(events, act.expected, 'atcute live');
    assertStreamInvariants(events, 'atcute live');
    firstCursor = events[0].time_us;
    assert.equal(live.atcute.subscription.cursor, events.at(-1).time_us, "atcute's cursor follows time_us");
  });

  test('@skyware/jetstream, live: every event, in order', async () => {
    const events = await live.skyware.waitFor(isSentinel(1), 'sentinel 1');
    assert.deepEqual(live.skyware.errors, []);
    assertEventsMatch(events, act.expected, 'skyware live');
    assert.equal(live.skyware.jetstream.cursor, events.at(-1).time_us, "skyware's cursor follows time_us");
  });

  test('compress=true on the ws transport: the same events, as zstd frames', async () => {
    const frames = await live.zstd.waitFor(isSentinel(1), 'sentinel 1');
    assert.ok(frames.every((f) => f.binary));
    assertEventsMatch(frames.map((f) => f.event), act.expected, 'zstd on ws');
  });

  test('@atcute/jetstream from a cursor, with wantedCollections (prefixes and NSIDs), wantedDids, and both', async () => {
    assert.ok(firstCursor, 'the live test ran first');
    const filters = [
      { wantedCollections: ['app.bsky.graph.*', 'com.example.*'] },
      { wantedDids: [users.carol.did] },
      { wantedCollections: ['app.bsky.feed.*', 'com.example.thing'], wantedDids: [users.bob.did, users.carol.did] },
    ];
    for (const filter of filters) {
      const client = atcuteClient(stack.contrail.wsUrl, { cursor: firstCursor, ...filter });
      closers.push(() => client.close());
      const events = await client.readUntil(isSentinel(1), `sentinel 1 for ${JSON.stringify(filter)}`);
      assert.deepEqual(client.validationErrors, []);
      assertEventsMatch(events, act.expected.filter((e) => wants(filter, e)), `atcute ${JSON.stringify(filter)}`);
      await client.close();
    }
  });

  test('@skyware/jetstream from a cursor, with wantedCollections and wantedDids in the URL, and onCreate', async () => {
    const filter = { wantedCollections: ['app.bsky.feed.post', 'com.example.thing'], wantedDids: [users.alice.did, users.carol.did] };
    const client = skywareClient(`${stack.contrail.wsUrl}/subscribe`, { cursor: firstCursor, ...filter });
    closers.push(() => client.close());
    const created = [];
    client.jetstream.onCreate('app.bsky.feed.post', (event) => created.push(event));
    const events = await client.waitFor(isSentinel(1), 'sentinel 1');
    const wanted = act.expected.filter((e) => wants(filter, e));
    assertEventsMatch(events, wanted, 'skyware filtered');
    assertEventsMatch(created, wanted.filter((e) => e.collection === 'app.bsky.feed.post' && e.operation === 'create'), 'skyware onCreate');
    client.close();
  });

  test('@atcute/jetstream updateOptions on a live connection sends options_update and the filter changes', async () => {
    const filter = { wantedCollections: ['app.bsky.feed.like', SENTINEL_COLLECTION] };
    live.atcute.subscription.updateOptions(filter);
    // No ack exists for options_update, but it cannot lose the race: it is on contrail's socket
    // before the PDS has even received the first write, whose event then still has to cross
    // the firehose and an asynchronous LMDB commit before contrail publishes it.
    const before = act.expected.length;
    const post = await act.post(users.alice, { text: 'not wanted after the update' });
    await act.like(users.bob, post);
    await act.sentinel(users.carol, 2);
    const events = await live.atcute.readUntil(isSentinel(2), 'sentinel 2 after updateOptions');
    assert.deepEqual(live.atcute.validationErrors, []);
    assertEventsMatch(events, act.expected.slice(before).filter((e) => wants(filter, e)), 'atcute after updateOptions');
  });
});
