/**
 * Fan-out under concurrent ingest, once per transport: 100 subscribers with random filters and
 * random cursors connect while a realistic stream is being ingested, and each must receive
 * exactly the brute-force-filtered slice of the stored stream from its cursor on, strictly
 * increasing — so the replay→live cutover loses, duplicates and reorders nothing (Jetstream
 * v1's #42). Then #42's own scenario, and a subscriber that falls far behind and catches up.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import type { tempDir } from './support/gateway.ts';
import {
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
  stats,
  waitUntil,
  wants,
  type FilterSpec,
  type StoredEvent,
  startRelayGateway,
  stopRelayGateway,
} from './support/subscribe-client.ts';
import { SyntheticFirehose, mulberry32 } from './support/synthetic.ts';
import { transportsUnderTest } from './support/transports.ts';

const CLIENTS = 100;
const COLLECTIONS = [POST, LIKE, REPOST, FOLLOW, 'app.bsky.graph.block', 'app.bsky.graph.listitem', 'app.bsky.actor.profile', 'fyi.unravel.frontpage.vote', 'com.example.none'];
const PREFIXES = ['app.bsky.feed.*', 'app.bsky.graph.*', 'app.bsky.*', 'fyi.*', 'app.*'];

/** Where a subscriber starts: a cursor, or live (no cursor or a future one). */
type Start = { cursor: number } | { live: 'absent' | 'future'; after: number; atMost: number };

interface Client {
  filter: FilterSpec;
  compress: boolean;
  start: Start;
  subscription: Subscription;
}

function randomFilter(rnd: () => number, dids: string[]): FilterSpec {
  const pick = <T>(items: readonly T[], n: number) => Array.from({ length: n }, () => items[Math.floor(rnd() * items.length)]!);
  const roll = rnd();
  const filter: FilterSpec =
    roll < 0.15 ? {}
    : roll < 0.4 ? { wantedCollections: pick(COLLECTIONS, 1 + Math.floor(rnd() * 3)) }
    : roll < 0.6 ? { wantedCollections: [...pick(PREFIXES, 1 + Math.floor(rnd() * 2)), ...pick(COLLECTIONS, Math.floor(rnd() * 2))] }
    : roll < 0.85 ? { wantedDids: pick(dids, 1 + Math.floor(rnd() * 5)) }
    : { wantedDids: pick(dids, 1 + Math.floor(rnd() * 8)), wantedCollections: pick([...COLLECTIONS, ...PREFIXES], 1 + Math.floor(rnd() * 2)) };
  if (rnd() < 0.1) filter.maxMessageSizeBytes = 300 + Math.floor(rnd() * 1200);
  return filter;
}

function receivedJson(client: Client, decompressor: Decompressor): string[] {
  const { messages } = client.subscription;
  if (!client.compress) return messages.map((m) => m.data.toString('utf8'));
  return messages.map((m) => decompressor.decompress(m.data).toString('utf8'));
}

function newestReceived(client: Client, decompressor: Decompressor): number {
  const last = client.subscription.messages.at(-1);
  if (!last) return 0;
  return JSON.parse((client.compress ? decompressor.decompress(last.data) : last.data).toString('utf8')).time_us;
}

/** What a client must have received, given the final stored stream. */
function checkClient(client: Client, received: string[], stream: StoredEvent[], label: string): void {
  const times = received.map((raw) => JSON.parse(raw).time_us as number);
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, `${label}: time_us strictly increases`);
  const { start } = client;
  if ('cursor' in start) {
    const expected = stream.filter((e) => e.timeUs >= start.cursor && wants(client.filter, e)).map((e) => e.raw);
    assert.deepEqual(received, expected, label);
    return;
  }
  // Live: everything wanted after some point between the last event seen before connecting
  // and the newest stored once connected — the tip at the upgrade lies between the two.
  const candidates = stream.filter((e) => e.timeUs > start.after && wants(client.filter, e));
  const missed = candidates.length - received.length;
  assert.ok(missed >= 0, `${label}: no more events than were stored after connecting`);
  assert.deepEqual(received, candidates.slice(missed).map((e) => e.raw), label);
  if (missed > 0) assert.ok(candidates[missed - 1]!.timeUs <= start.atMost, `${label}: nothing missed after the connection was open`);
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`/subscribe fan-out over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;

    before(async () => {
      // A small hot log so that old cursors replay from LMDB, and a small send buffer so that
      // busy subscribers often leave the live index and pull from the store again.
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport, hotCacheBytes: 128 * 1024 }, { hub: { highWaterBytes: 64 * 1024, slowWindowMs: 120_000 } }));
    });

    afterEach(() => Subscription.closeAll());

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test(`${CLIENTS} subscribers with random filters and cursors, connecting during ingest, each get exactly their slice`, async () => {
      const rnd = mulberry32(4242);
      const firehose = new SyntheticFirehose({ seed: 99, accounts: 60, firstSeq: up.seq + 1 });
      const pushSynthetic = (count: number) => {
        for (const frame of firehose.frames(count)) {
          relay.push({ seq: frame.seq, bytes: frame.bytes });
          up.seq = frame.seq;
        }
      };
      const recorder = await Subscription.open(gateway.port, '');
      pushSynthetic(300);
      await up.settle();
      const early = await readWholeStream(gateway.port);
      const dids = [...new Set(early.map((e) => e.did))];

      let pushing = true;
      const atLeast = up.seq + 200;
      const pusher = (async () => {
        while (pushing || up.seq < atLeast) {
          pushSynthetic(3);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();

      /** Opens one random subscriber; they connect ten at a time. */
      const connect = async (): Promise<Client> => {
        const filter = randomFilter(rnd, dids);
        const compress = rnd() < 0.2;
        const roll = rnd();
        let start: Start;
        let cursor: number | undefined;
        if (roll < 0.3) {
          // Live, with no cursor or one in the future.
          const after = recorder.newestTimeUs();
          cursor = roll < 0.15 ? undefined : (Date.now() + 600_000) * 1000;
          start = { live: cursor === undefined ? 'absent' : 'future', after, atMost: Infinity };
        } else if (roll < 0.4) {
          cursor = rnd() < 0.5 ? 0 : early[0]!.timeUs - 5_000_000; // older than the buffer
          start = { cursor };
        } else if (roll < 0.75) {
          cursor = early[Math.floor(rnd() * early.length)]!.timeUs; // exactly an event's time_us: inclusive
          start = { cursor };
        } else {
          // Just behind the tip while it moves: replay hands over to live mid-ingest.
          cursor = recorder.newestTimeUs() - Math.floor(rnd() * 50_000);
          start = { cursor };
        }
        const subscription = await Subscription.open(gateway.port, queryFor(filter, { cursor, compress: compress ? 'true' : undefined }));
        if ('live' in start) start.atMost = (await stats(gateway.port)).newestTimeUs!;
        return { filter, compress, start, subscription };
      };
      const clients: Client[] = [];
      while (clients.length < CLIENTS) clients.push(...(await Promise.all(Array.from({ length: 10 }, connect))));
      pushing = false;
      await pusher;

      // A last event every filter wants: an identity event of each wanted DID, and one more.
      for (const wanted of new Set(clients.flatMap((c) => c.filter.wantedDids ?? []))) up.identity(wanted, 'sentinel.bsky.social');
      up.identity(`did:plc:${'sentinel'.padEnd(24, 'z')}`, 'sentinel.bsky.social');
      await up.settle();
      const stream = await readWholeStream(gateway.port);
      assert.ok(stream.length > early.length + 200, `ingest ran while subscribers connected (${early.length} → ${stream.length} events)`);
      assert.deepEqual(recorder.texts, stream.slice(stream.length - recorder.messages.length).map((e) => e.raw), 'the live recorder saw the same stream as a replay');

      const kinds = { cursor: 0, live: 0, compressed: 0, filtered: 0 };
      const served = await httpGet(gateway.port, '/dictionary');
      const decompressor = new Decompressor();
      decompressor.loadDictionary(served.body);
      for (const [i, client] of clients.entries()) {
        const last = stream.filter((e) => wants(client.filter, e)).at(-1)!;
        await waitUntil(() => newestReceived(client, decompressor) >= last.timeUs, `client ${i} (${JSON.stringify(client.filter)}) to receive its last event`, 60_000);
        checkClient(client, receivedJson(client, decompressor), stream, `client ${i}: ${JSON.stringify(client.filter)} from ${JSON.stringify(client.start)}${client.compress ? ', compressed' : ''}`);
        kinds['cursor' in client.start ? 'cursor' : 'live']++;
        if (client.compress) kinds.compressed++;
        if (Object.keys(client.filter).length > 0) kinds.filtered++;
      }
      // The random mix really covered each case.
      assert.ok(kinds.cursor > 50 && kinds.live > 15 && kinds.compressed > 10 && kinds.filtered > 70, JSON.stringify(kinds));
    });

    test("Jetstream v1's cutover bug (jetstream-legacy #42): a cursor at a live subscriber's first event sees exactly what it saw", async () => {
      const alice = `did:plc:${'alice'.padEnd(24, 'a')}`;
      const live = await Subscription.open(gateway.port, '');
      let pushing = true;
      let n = 0;
      const pusher = (async () => {
        while (pushing) {
          for (let i = 0; i < 5; i++, n++) up.create(alice, [POST, LIKE, REPOST, FOLLOW][n % 4]!);
          await new Promise((resolve) => setTimeout(resolve, 3));
        }
      })();
      await live.waitForCount(200, '200 live events');
      const cursors = [live.events[0]!.time_us, live.events[100]!.time_us, live.events[199]!.time_us];
      const late = await Promise.all(cursors.map((cursor) => Subscription.open(gateway.port, `cursor=${cursor}`)));
      await Promise.all(late.map((s) => s.waitForCount(150, 'replay and then live events')));
      pushing = false;
      await pusher;
      const { newestTimeUs } = await up.settle();
      for (const s of [live, ...late]) await s.waitForTime(newestTimeUs!);
      for (const [i, s] of late.entries()) {
        const from = live.events.findIndex((e) => e.time_us === cursors[i]);
        assert.deepEqual(s.texts, live.texts.slice(from), `cursor at live event ${from}`);
      }
    });

    test('a subscriber that stops reading leaves the live path, and on resuming reads from the store without a gap', async () => {
      const bob = `did:plc:${'bob'.padEnd(24, 'a')}`;
      const lagging = await Subscription.open(gateway.port, '');
      const socket = (lagging.ws as unknown as { _socket: import('node:net').Socket })._socket;
      socket.pause();
      const fast = await Subscription.open(gateway.port, '');
      // Large events until the paused socket's kernel buffers and our high-water mark are full.
      await waitUntil(
        async () => {
          for (let i = 0; i < 20; i++) up.create(bob, POST, { ...recordFor(POST, i, bob), text: 'x'.repeat(50_000) });
          await up.settle();
          return gateway.server.hub.counts().some((c) => c.mode === 'blocked');
        },
        'the paused subscriber to be taken off the live index',
        60_000,
      );
      up.create(bob, LIKE);
      const { newestTimeUs } = await up.settle();
      socket.resume();
      await Promise.all([lagging, fast].map((s) => s.waitForTime(newestTimeUs!, 'the newest event', 60_000)));
      assert.deepEqual(lagging.texts, fast.texts, 'the lagging subscriber got every event, in order');
      assert.equal(lagging.closeInfo, undefined, 'and was not dropped');
      await waitUntil(() => gateway.server.hub.counts().every((c) => c.mode === 'live'), 'both subscribers to be live again');
    });
  });
}
