// contrail end to end on the wire: a real PLC + PDS upstream, contrail as a child process started
// through its CLI, and plain `ws` subscribers that keep every frame's bytes. Every write of a
// realistic mix must come out of /subscribe as the right Jetstream event, in order, filtered as
// asked, compressed when asked — and again, byte for byte, from ?cursor= after a restart.
//
// Run with `npm run test:e2e` (installs this folder's dependencies on first use).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SENTINEL_COLLECTION, createAccounts, phaseOne, phaseTwo } from './lib/activity.mjs';
import { tail } from './lib/contrail.mjs';
import { assertEventsMatch, assertStreamInvariants, jetstreamText, wants } from './lib/expect.mjs';
import { startStack } from './lib/stack.mjs';
import { RawSubscriber, fetchDictionary, subscribeUrl } from './lib/subscribe.mjs';

// Filters the suite subscribes with. Every one lets the sentinel (carol's com.example.thing
// record) through, so "sentinel received" means "this subscriber has everything".
const FILTERS = {
  collections: { wantedCollections: ['app.bsky.feed.post', 'com.example.thing'] },
  prefixes: { wantedCollections: ['app.bsky.graph.*', 'com.example.*'] },
};
const isSentinel = (phase) => (event) =>
  event.kind === 'commit' && event.commit.collection === SENTINEL_COLLECTION && event.commit.rkey === `sentinel-${phase}`;

describe('contrail against a real PDS, on the wire', { timeout: 150_000 }, () => {
  let stack;
  let contrail;
  let act;
  let dictionary;
  const subscribers = {};
  /** The unfiltered plain stream of phase one: the reference every other view is compared with. */
  let reference;
  const testStartedUs = Date.now() * 1000;

  before(async () => {
    stack = await startStack();
    ({ contrail, act } = stack);
    dictionary = await fetchDictionary(contrail.httpUrl);
    // DID filters need the DIDs, so those subscribers use requireHello + options_update after
    // the accounts exist: until the hello they are held at the position they connected at.
    const open = (name, params, options) => (subscribers[name] = new RawSubscriber(subscribeUrl(contrail.wsUrl, params), options));
    open('all', {});
    open('zstd', { compress: true }, { dictionary: dictionary.bytes });
    open('zstdHeader', {}, { dictionary: dictionary.bytes, headers: { 'Socket-Encoding': 'zstd' } });
    open('collections', FILTERS.collections);
    open('prefixes', FILTERS.prefixes);
    open('carol', { requireHello: true });
    open('bobAndCarolFeeds', { requireHello: true, wantedCollections: 'app.bsky.graph.*' });
    await Promise.all(Object.values(subscribers).map((s) => s.opened));
    const { bob, carol } = await createAccounts(act);
    FILTERS.carol = { wantedDids: [carol.did] };
    // The options_update replaces the URL's wantedCollections (Jetstream semantics).
    FILTERS.bobAndCarolFeeds = { wantedDids: [bob.did, carol.did], wantedCollections: ['app.bsky.feed.*', 'com.example.thing'] };
    await subscribers.carol.send({ type: 'options_update', payload: FILTERS.carol });
    await subscribers.bobAndCarolFeeds.send({ type: 'options_update', payload: FILTERS.bobAndCarolFeeds });
    await phaseOne(act);
    await Promise.all(Object.entries(subscribers).map(([name, s]) => s.waitFor(isSentinel(1), `sentinel 1 on "${name}"`)));
    reference = subscribers.all.frames;
  });

  after(async () => {
    await Promise.all(Object.values(subscribers).map((s) => s.close()));
    await stack?.close();
  });

  test('every write becomes the right event, in write order', () => {
    const events = reference.map((f) => f.event);
    assertEventsMatch(events, act.expected, 'unfiltered');
    assertStreamInvariants(events, 'unfiltered');
    assert.ok(events[0].time_us > testStartedUs - 60e6, 'time_us is unix microseconds of this run');
    assert.ok(reference.every((f) => !f.binary), 'an uncompressed subscriber gets text frames');
  });

  test('each frame is byte for byte what Jetstream v1 writes (key order, escapes, blobs, $bytes, $link)', () => {
    for (const [i, frame] of reference.entries()) {
      assert.equal(frame.text, jetstreamText(act.expected[i], frame.event), `event #${i} "${act.expected[i].label}"`);
    }
  });

  test('filters: wantedCollections (exact and prefix), wantedDids, and both, by URL and by options_update', () => {
    for (const name of ['collections', 'prefixes', 'carol', 'bobAndCarolFeeds']) {
      const wanted = act.expected.filter((e) => wants(FILTERS[name], e));
      assert.ok(wanted.length > 3 && wanted.length < act.expected.length, `filter ${name} is selective`);
      assertEventsMatch(subscribers[name].events, wanted, `filter ${name}`);
      // The same events, with the same bytes and cursors, as the unfiltered stream.
      const fromReference = reference.filter((f, i) => wants(FILTERS[name], act.expected[i])).map((f) => f.text);
      assert.deepEqual(subscribers[name].frames.map((f) => f.text), fromReference, `filter ${name}: same bytes as the unfiltered stream`);
    }
  });

  test('/metrics accounts for every frame read and every event stored', async () => {
    const expectedEvents = act.expected.length;
    const syncFrames = (m) => m.get('contrail_upstream_frames_total{type="sync"}') ?? 0;
    // Each #sync frame is stored as a sync event (which v1 subscribers without wantedKinds never see).
    // The last commit is published before its counter moves on: poll briefly, bounded.
    const metrics = await pollMetrics(contrail.metricsPort, (m) => m.get('contrail_store_events_total') >= expectedEvents + syncFrames(m));
    assert.ok(syncFrames(metrics) >= 4, 'the PDS #sync frames were read');
    assert.equal(metrics.get('contrail_store_events_total'), expectedEvents + syncFrames(metrics), 'one stored event per expected event and per #sync frame');
    assert.equal(metrics.get('contrail_upstream_connected'), 1);
    const drops = [...metrics].filter(([key, value]) => key.startsWith('contrail_ingest_drops_total') && value > 0);
    assert.deepEqual(drops, [], 'nothing from a real PDS is dropped');
    const zstdSent = [...metrics].filter(([key]) => key.startsWith('contrail_events_sent_total{') && key.includes('compression="zstd"')).reduce((sum, [, value]) => sum + value, 0);
    assert.ok(zstdSent >= 2 * expectedEvents, 'both compressed subscribers are counted');
  });

  test('compressed subscribers (compress=true and Socket-Encoding: zstd) get the same events as zstd frames', () => {
    assert.ok(dictionary.announcedId > 0, 'GET /dictionary names its dictionary ID');
    for (const name of ['zstd', 'zstdHeader']) {
      const frames = subscribers[name].frames;
      assert.ok(frames.every((f) => f.binary), `${name}: binary frames`);
      const ids = [...new Set(frames.map((f) => f.dictionaryId))];
      assert.deepEqual(ids, [dictionary.announcedId], `${name}: each frame names the /dictionary ID`);
      assert.deepEqual(frames.map((f) => f.text), reference.map((f) => f.text), `${name}: decompresses to the plain stream's bytes`);
    }
  });

  test('?cursor= replays from the event with that time_us (inclusive), live process', async () => {
    // Start inside the applyWrites batch: its events share a commit and have adjacent cursors.
    const start = act.expected.findIndex((e) => e.label.startsWith('applyWrites[1]'));
    const replay = new RawSubscriber(subscribeUrl(contrail.wsUrl, { cursor: reference[start].event.time_us }));
    try {
      const frames = await replay.waitFor(isSentinel(1), 'sentinel 1 on the replay');
      assert.deepEqual(frames.map((f) => f.text), reference.slice(start).map((f) => f.text));
    } finally {
      await replay.close();
    }
  });

  test('restart: SIGTERM exits 0; the new process catches up what was written meanwhile and replays the same bytes', async () => {
    for (const s of Object.values(subscribers)) await s.close();
    const exit = await contrail.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM\n${tail(contrail.logs)}`);
    assert.ok(contrail.logs.some((e) => e.msg === 'stopped'), 'logs "stopped"');

    const phaseTwoStart = act.expected.length;
    await phaseTwo(act); // while contrail is down: it must fetch these from the PDS by its saved cursor
    contrail = await stack.startContrail(); // same data dir

    const replay = new RawSubscriber(subscribeUrl(contrail.wsUrl, { cursor: reference[0].event.time_us }));
    const zstd = new RawSubscriber(subscribeUrl(contrail.wsUrl, { cursor: reference[0].event.time_us, compress: true, ...FILTERS.prefixes }), {
      dictionary: dictionary.bytes,
    });
    try {
      const frames = await replay.waitFor(isSentinel(2), 'sentinel 2 on the replay after restart');
      assert.deepEqual(frames.slice(0, reference.length).map((f) => f.text), reference.map((f) => f.text), 'phase one: the same bytes after the restart');
      const events = frames.map((f) => f.event);
      assertEventsMatch(events, act.expected, 'after restart');
      assertStreamInvariants(events, 'after restart');
      for (let i = phaseTwoStart; i < frames.length; i++) {
        assert.equal(frames[i].text, jetstreamText(act.expected[i], events[i]), `phase two event #${i} "${act.expected[i].label}"`);
      }

      const compressed = await zstd.waitFor(isSentinel(2), 'sentinel 2 on the compressed filtered replay');
      assert.ok(compressed.every((f) => f.binary));
      const wanted = frames.filter((f, i) => wants(FILTERS.prefixes, act.expected[i])).map((f) => f.text);
      assert.deepEqual(compressed.map((f) => f.text), wanted, 'compressed + filtered + cursor: the matching bytes');
    } finally {
      await replay.close();
      await zstd.close();
    }
  });

  test('after the restart, a live subscriber gets only new events', async () => {
    const live = new RawSubscriber(subscribeUrl(contrail.wsUrl, FILTERS.collections));
    try {
      await live.opened;
      const before = act.expected.length;
      await act.sentinel(act.users.get('carol'), 3);
      const frames = await live.waitFor(isSentinel(3), 'sentinel 3 live');
      assertEventsMatch(frames.map((f) => f.event), act.expected.slice(before), 'live after restart');
    } finally {
      await live.close();
    }
  });
});


/** GET /metrics as a Map of "name{labels}" → value, polled until `ready` holds (bounded). */
async function pollMetrics(port, ready, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const metrics = new Map();
    for (const line of text.split('\n')) {
      const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (match) metrics.set(match[1], Number(match[2]));
    }
    if (ready(metrics) || Date.now() > deadline) return metrics;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
