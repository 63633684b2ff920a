/**
 * Real Jetstream client packages from npm against contrail, used as their READMEs show them:
 * @atcute/jetstream 2.0.0 (event validation on) and @skyware/jetstream 0.2.5, on both
 * transports, fed realistic records (real TIDs and CIDs) through FakeRelay. Node 20 has no
 * global WebSocket, so each is handed the `ws` class, as their docs say to.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { JetstreamSubscription } from '@atcute/jetstream';
import { Jetstream } from '@skyware/jetstream';
import { WebSocket } from 'ws';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { FOLLOW, LIKE, POST, Upstream, readWholeStream, waitUntil, wants, type FilterSpec, type StoredEvent } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

type Did = `did:${string}:${string}`;

const ALICE: Did = `did:plc:${'alice'.padEnd(24, 'a')}`;
const BOB: Did = `did:plc:${'bob'.padEnd(24, 'a')}`;
const CAROL: Did = 'did:web:carol.example.com';

/** partysocket's default reconnect delay is seconds; tests reconnect quickly. */
const FAST_RECONNECT = { minReconnectionDelay: 20, maxReconnectionDelay: 200 };

/** Iterates an @atcute/jetstream subscription (as its README does) into an array, until stopped. */
function collect(subscription: JetstreamSubscription) {
  const events: Array<Record<string, any>> = [];
  const iterator = subscription[Symbol.asyncIterator]();
  void (async () => {
    for await (const event of iterator) events.push(event);
  })();
  return { events, stop: () => iterator.return() };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const parsed = (events: StoredEvent[]) => events.map((e) => JSON.parse(e.raw));
const isHandleless = (e: StoredEvent) => e.kind === 'identity' && !('handle' in JSON.parse(e.raw).identity);

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`Jetstream client packages over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    /** The stored stream, as of the start of the current test. */
    let stream: StoredEvent[];
    const cleanups: Array<() => unknown> = [];

    before(async () => {
      relay = await FakeRelay.start();
      dir = tempDir();
      // A fixed port, so the restart test can come back on it: uSockets sets SO_REUSEADDR only
      // for non-zero ports, and a port-0 listener's old connections would block the rebind.
      gateway = await startTestGateway(relay.url, dir.path, { transport, port: await freePort() });
      await relay.waitForConnections(1);
      up = new Upstream(relay, () => gateway.port);
      // Realistic traffic (posts with facets, embeds and blobs, likes, follows, profiles, deletes,
      // identity and account events with every status), plus known accounts' events.
      up.synthetic(150, 5, 40);
      for (const did of [ALICE, BOB, CAROL]) {
        up.create(did, POST);
        up.create(did, LIKE);
        up.commit(did, [{ collection: FOLLOW }, { collection: POST, action: 'delete' }]);
        up.identity(did, `${did.split(':')[2]!.slice(0, 5)}.bsky.social`);
        up.identity(did); // no handle: Jetstream omits the key
        up.account(did, false, 'deactivated');
      }
      await up.settle();
    });

    beforeEach(async () => {
      stream = await readWholeStream(gateway.port);
    });

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });

    after(async () => {
      await gateway?.stop();
      await relay?.stop();
      dir?.remove();
    });

    test('@atcute/jetstream replays from a cursor with validation on; it drops identity events without a handle', async () => {
      const errors: unknown[] = [];
      const subscription = new JetstreamSubscription({
        url: `ws://127.0.0.1:${gateway.port}`,
        cursor: stream[0]!.timeUs,
        ws: { WebSocket, ...FAST_RECONNECT },
        onError: (err) => errors.push(err),
      });
      const { events, stop } = collect(subscription);
      cleanups.push(stop);
      assert.ok(stream.some(isHandleless));
      // Validation rejects identity events whose handle is absent (atcute requires the key;
      // Jetstream v1 omits it when the relay has none, and so do we): the client's quirk.
      const expected = parsed(stream.filter((e) => !isHandleless(e)));
      await waitUntil(() => events.length + errors.length >= stream.length, `${stream.length} events or validation errors`);
      assert.deepEqual(events, expected);
      assert.equal(errors.length, stream.filter(isHandleless).length);
      for (const err of errors) assert.match(String(err), /handle/);
      assert.equal(subscription.cursor, stream.at(-1)!.timeUs);
    });

    test('@atcute/jetstream with wantedCollections and wantedDids (sent by options_update), then updateOptions on the open socket', async () => {
      const filter: FilterSpec = { wantedCollections: [POST, FOLLOW], wantedDids: [ALICE, BOB] };
      const subscription = new JetstreamSubscription({
        url: `ws://127.0.0.1:${gateway.port}`,
        cursor: stream[0]!.timeUs,
        wantedCollections: filter.wantedCollections,
        wantedDids: [ALICE, BOB],
        ws: { WebSocket, ...FAST_RECONNECT },
      });
      const { events, stop } = collect(subscription);
      cleanups.push(stop);
      const expected = parsed(stream.filter((e) => wants(filter, e) && !isHandleless(e)));
      await waitUntil(() => events.length >= expected.length, `${expected.length} filtered events`);
      assert.deepEqual(events, expected);

      // Only likes now; atcute keeps its wantedDids and sends both lists again. Once a probe
      // (a like, which the old filter refuses) arrives, the server has applied the update.
      subscription.updateOptions({ wantedCollections: [LIKE] });
      await waitUntil(() => {
        up.create(ALICE, LIKE);
        return events.at(-1)?.commit?.collection === LIKE;
      }, 'the update to apply');
      const { newestTimeUs: probed } = await up.settle();
      up.create(ALICE, POST);
      up.create(CAROL, LIKE);
      up.create(BOB, FOLLOW);
      up.create(BOB, LIKE);
      await up.settle();
      await waitUntil(() => events.at(-1)?.did === BOB, 'the last like');
      assert.deepEqual(
        events.filter((e) => e.time_us > probed!).map((e) => [e.did, e.commit.collection]),
        [[BOB, LIKE]],
      );
    });

    test('@atcute/jetstream resumes from its cursor after the gateway restarts, with nothing lost', async () => {
      const subscription = new JetstreamSubscription({
        url: `ws://127.0.0.1:${gateway.port}`,
        wantedDids: [ALICE],
        ws: { WebSocket, ...FAST_RECONNECT },
      });
      const { events, stop } = collect(subscription);
      cleanups.push(stop);
      up.create(ALICE, POST);
      await waitUntil(() => events.length === 1, 'a live event');
      const port = gateway.port;
      await gateway.stop();
      up.create(ALICE, LIKE); // while contrail is down: the relay keeps it
      gateway = await startTestGateway(relay.url, dir.path, { transport, port });
      up.create(ALICE, FOLLOW);
      await up.settle();
      await waitUntil(() => events.length >= 4, 'the events since the restart');
      // The cursor is inclusive, as in Jetstream v1, and atcute resumes at the exact time_us it
      // last saw: the event at the seam arrives twice. Nothing is missing or out of order.
      assert.deepEqual(
        events.map((e) => e.commit.collection),
        [POST, POST, LIKE, FOLLOW],
      );
      assert.deepEqual(events[0], events[1]);
    });

    test('@skyware/jetstream with wantedCollections, wantedDids and a cursor; updateOptions replaces both filters', async () => {
      const filter: FilterSpec = { wantedCollections: [POST, LIKE], wantedDids: [ALICE, CAROL] };
      const jetstream = new Jetstream({
        endpoint: `ws://127.0.0.1:${gateway.port}/subscribe`,
        wantedCollections: filter.wantedCollections,
        wantedDids: filter.wantedDids as Did[],
        cursor: stream[0]!.timeUs,
        ws: WebSocket,
      });
      const events: Array<Record<string, any>> = [];
      const posts: Array<Record<string, any>> = [];
      const errors: unknown[] = [];
      jetstream.on('commit', (event) => events.push(event));
      jetstream.on('identity', (event) => events.push(event));
      jetstream.on('account', (event) => events.push(event));
      jetstream.onCreate(POST, (event) => posts.push(event));
      jetstream.on('error', (err) => errors.push(err));
      jetstream.start();
      cleanups.push(() => jetstream.close());

      const expected = parsed(stream.filter((e) => wants(filter, e)));
      await waitUntil(() => events.length >= expected.length, `${expected.length} filtered events`);
      // skyware does not validate identity events, so the handle-less ones arrive too.
      assert.deepEqual(events, expected);
      assert.deepEqual(posts, expected.filter((e) => e.commit?.collection === POST && e.commit.operation === 'create'));
      assert.equal(jetstream.cursor, expected.at(-1).time_us);

      // skyware sends the payload as given: only wantedDids, so wantedCollections is cleared.
      jetstream.updateOptions({ wantedDids: [BOB] });
      await waitUntil(() => {
        up.create(BOB, FOLLOW); // a probe the old filter refuses
        return events.at(-1)?.did === BOB;
      }, 'the update to apply');
      const { newestTimeUs: probed } = await up.settle();
      up.create(ALICE, POST);
      up.create(BOB, POST);
      up.identity(BOB, 'bob.bsky.social');
      await up.settle();
      await waitUntil(() => events.at(-1)?.kind === 'identity', 'BOB’s identity event');
      assert.deepEqual(
        events.filter((e) => e.time_us > probed!).map((e) => [e.did, e.kind, e.commit?.collection]),
        [
          [BOB, 'commit', POST],
          [BOB, 'identity', undefined],
        ],
      );
      assert.deepEqual(errors, []);
    });
  });
}
