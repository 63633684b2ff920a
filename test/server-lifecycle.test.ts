/**
 * Connection lifecycle on /subscribe, once per transport: the slow-consumer rule
 * (ConsumerTooSlow, then a close frame, while fast subscribers lose nothing), subscriber and
 * per-address limits (503, 429), pings and dropping a peer that stops answering them,
 * shutdown (1001 to everyone), and a cursor older than what retention kept.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { afterEach, describe, test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import type { GatewayConfig } from '../src/config.ts';
import { CursorClock, wallClockMicros } from '../src/events/clock.ts';
import type { Entry } from '../src/events/entry.ts';
import { EventStore } from '../src/store/event-store.ts';
import type { Gateway, GatewayTuning } from '../src/gateway.ts';
import { eventsOf } from './support/events.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { identityFrame } from './support/frames.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { runPacedStream } from './support/paced-stream.ts';
import { ThrottledProxy } from './support/throttled-proxy.ts';
import {
  LIKE,
  POST,
  Subscription,
  Upstream,
  httpGet,
  readWholeStream,
  recordFor,
  stats,
  tcpSocket,
  upgradeRequest,
  waitUntil,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const ALICE = `did:plc:${'alice'.padEnd(24, 'a')}`;
const BOB = `did:plc:${'bob'.padEnd(24, 'a')}`;

interface Harness {
  relay: FakeRelay;
  gateway: Gateway;
  up: Upstream;
  dir: ReturnType<typeof tempDir>;
  stop(): Promise<void>;
}

/** `prepare` may fill the data dir before the gateway opens it. */
async function harness(
  transport: 'uws' | 'ws',
  overrides: Partial<GatewayConfig> = {},
  tuning: GatewayTuning = {},
  prepare?: (dataDir: string) => Promise<void>,
): Promise<Harness> {
  const relay = await FakeRelay.start();
  const dir = tempDir();
  await prepare?.(dir.path);
  const gateway = await startTestGateway(relay.url, dir.path, { transport, ...overrides }, tuning);
  await relay.waitForConnections(1);
  let stopped = false;
  const h: Harness = {
    relay,
    gateway,
    dir,
    up: new Upstream(relay, () => h.gateway.port),
    async stop() {
      if (!stopped) await h.gateway.stop();
      stopped = true;
      await relay.stop();
    },
  };
  return h;
}

/** A GET on a given agent, so a test controls connection reuse. */
function getWith(agent: Agent, port: number, path: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`/subscribe lifecycle over ${transport}`, { skip }, () => {
    const running: Harness[] = [];
    const start = async (...args: Parameters<typeof harness> extends [unknown, ...infer Rest] ? Rest : never) => {
      const h = await harness(transport, ...args);
      running.push(h);
      return h;
    };

    afterEach(async () => {
      await Subscription.closeAll();
      for (const h of running.splice(0)) {
        await h.stop();
        h.dir.remove();
      }
    });

    test('a subscriber that stops reading gets ConsumerTooSlow and a close frame, even when it reads again seconds later; fast subscribers lose nothing', async () => {
      const highWaterBytes = 256 * 1024;
      const { gateway, up } = await start({}, { hub: { highWaterBytes, slowWindowMs: 1500 } });
      const slow = await Subscription.open(gateway.port, '');
      tcpSocket(slow).pause();
      const fast = [
        await Subscription.open(gateway.port, ''),
        await Subscription.open(gateway.port, 'compress=true'),
        await Subscription.open(gateway.port, `wantedCollections=${POST}`),
      ];
      // Three posts and a like of ~50 kB a burst (~200 kB, under the high-water mark) until the
      // slow subscriber is dropped: the stream fills the paused socket's kernel buffers and the
      // mark, then moves on while the slow subscriber does not. The fast ones never fall behind
      // (paced-stream.ts), however slowly this loaded machine runs them.
      let posts = 0;
      let likes = 0;
      await runPacedStream({
        burst: () => {
          for (let i = 0; i < 3; i++, posts++) up.create(BOB, POST, { ...recordFor(POST, posts, BOB), text: `${posts} ${'x'.repeat(50_000)}` });
          up.create(ALICE, LIKE, { ...recordFor(LIKE, likes++, ALICE), padding: 'z'.repeat(50_000) });
        },
        received: () => fast[0]!.messages.length >= posts + likes && fast[1]!.messages.length >= posts + likes && fast[2]!.messages.length >= posts,
        done: async () => (await stats(gateway.port)).subscribers === fast.length,
        until: 'the slow subscriber to be dropped',
        timeoutMs: 120_000,
      });
      // Resuming seconds after the drop: the close must wait for the reader, not for a timer.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      tcpSocket(slow).resume();
      const closed = await slow.waitClosed();
      assert.equal(closed.code, 1008, `closed with a reason, not a silent 1006: ${JSON.stringify(closed)}`);
      assert.match(closed.reason, /^ConsumerTooSlow: /);
      const last = JSON.parse(slow.texts.at(-1)!);
      assert.equal(last.type, 'error');
      assert.equal(last.error, 'ConsumerTooSlow');
      assert.equal(typeof last.message, 'string');

      up.create(ALICE, POST);
      const { newestTimeUs } = await up.settle();
      const stream = await readWholeStream(gateway.port);
      const sentToSlow = slow.texts.slice(0, -1);
      assert.deepEqual(sentToSlow, stream.slice(0, sentToSlow.length).map((e) => e.raw), 'what the slow subscriber got has no gap');
      assert.ok(sentToSlow.length < stream.length);

      await fast[0]!.waitForTime(newestTimeUs!);
      assert.deepEqual(fast[0]!.texts, stream.map((e) => e.raw));
      await fast[2]!.waitForTime(newestTimeUs!);
      assert.deepEqual(fast[2]!.texts, stream.filter((e) => e.collection !== LIKE).map((e) => e.raw));
      await fast[1]!.waitForCount(stream.length);
      const decompressor = new Decompressor();
      decompressor.loadDictionary((await httpGet(gateway.port, '/dictionary')).body);
      assert.deepEqual(fast[1]!.messages.map((m) => decompressor.decompress(m.data).toString()), fast[0]!.texts);
      for (const s of fast) assert.ok(s.isOpen, 'fast subscribers stay connected');
    });

    test('a subscriber reading at 30% of the stream\'s rate is dropped with ConsumerTooSlow and a 1008 close, and reads both', async () => {
      const highWaterBytes = 1024 * 1024;
      const { gateway, up } = await start({}, { hub: { highWaterBytes, slowWindowMs: 1500 } });
      // The reader is let through 30% of each post's bytes as the post is made, so it keeps to
      // that share of the stream however fast this machine runs the stream (a reader at a fixed
      // byte rate reads over half of a stream a loaded machine slows down, and is never dropped).
      const proxy = await ThrottledProxy.metered(gateway.port);
      try {
        proxy.allow(1024); // the upgrade's answer
        const slow = await Subscription.open(proxy.port, '');
        const postBytes = 20_000;
        let streaming = true;
        const streamer = (async () => {
          for (let i = 0; streaming; i++) {
            up.create(BOB, POST, { ...recordFor(POST, i, BOB), text: `${i} ${'s'.repeat(postBytes)}` });
            proxy.allow(postBytes * 0.3);
            // As fast as the gateway stores them, ten posts at a time.
            if (i % 10 === 9) await up.settle();
          }
        })();
        await waitUntil(async () => (await stats(gateway.port)).subscribers === 0, 'the slow subscriber to be dropped', 120_000);
        streaming = false;
        await streamer;
        // What it was sent before the drop, the error message and the close frame: all of it now.
        proxy.allowAll();
        const closed = await slow.waitClosed(120_000);
        assert.equal(closed.code, 1008, `closed with a reason, not a silent 1006: ${JSON.stringify(closed)}`);
        assert.match(closed.reason, /^ConsumerTooSlow: read less than half as fast as the stream/);
        assert.equal(JSON.parse(slow.texts.at(-1)!).error, 'ConsumerTooSlow');
        const stream = await readWholeStream(gateway.port);
        const sent = slow.texts.slice(0, -1);
        assert.deepEqual(sent, stream.slice(0, sent.length).map((e) => e.raw), 'what it got has no gap');
      } finally {
        await proxy.close();
      }
    });

    test('a reading subscriber is never left waiting for a drain, even with a send high-water mark of a few KiB', async () => {
      const { gateway, up } = await start({}, { hub: { highWaterBytes: 4096 } });
      const s = await Subscription.open(gateway.port, '');
      for (let i = 0; i < 20; i++) up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: `${i} ${'y'.repeat(3000)}` });
      const { newestTimeUs } = await up.settle();
      await s.waitForTime(newestTimeUs!, 'all 20 events');
      assert.equal(s.messages.length, 20);
    });

    test('past max subscribers the upgrade gets 503 with a reason; a freed slot can be taken again', async () => {
      const { gateway } = await start({ maxSubscribers: 3 });
      const open = [await Subscription.open(gateway.port, ''), await Subscription.open(gateway.port, 'compress=true'), await Subscription.open(gateway.port, 'requireHello=true')];
      const refused = await upgradeRequest(gateway.port, '/subscribe');
      assert.equal(refused.status, 503);
      assert.match(refused.body.toString(), /limit of 3 subscribers/);
      assert.equal((await upgradeRequest(gateway.port, '/subscribe?cursor=x')).status, 400, 'a bad query is still a 400');
      await open[0]!.close();
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 2, 'the closed subscriber to free its slot');
      const again = await Subscription.open(gateway.port, '');
      assert.ok(again.isOpen);
    });

    test('past max connections per address the upgrade gets 429 with a reason', async () => {
      const { gateway } = await start({ maxConnectionsPerIp: 2 });
      const first = await Subscription.open(gateway.port, '');
      await Subscription.open(gateway.port, '');
      const refused = await upgradeRequest(gateway.port, '/subscribe');
      assert.equal(refused.status, 429);
      assert.match(refused.body.toString(), /at most 2 connections per client address/);
      // X-Forwarded-For is not trusted by default: anyone could claim any address.
      assert.equal((await upgradeRequest(gateway.port, '/subscribe', { 'x-forwarded-for': '203.0.113.9' })).status, 429);
      await first.close();
      await waitUntil(async () => (await upgradeRequest(gateway.port, '/subscribe')).status === 101, 'a slot for this address again');
    });

    test('behind one trusted proxy, connections are counted by the address it appended to X-Forwarded-For, whatever the client wrote', async () => {
      const { gateway } = await start({ maxConnectionsPerIp: 1, trustProxy: 1 });
      // An appending proxy (nginx's $proxy_add_x_forwarded_for) puts the address it saw last.
      const viaProxy = (header: string) => ({ headers: { 'x-forwarded-for': header } });
      const first = await Subscription.open(gateway.port, '', viaProxy('203.0.113.1'));
      await Subscription.open(gateway.port, '', viaProxy('203.0.113.1, 203.0.113.2'));
      for (const forged of ['198.51.100.7, 203.0.113.1', '198.51.100.8,203.0.113.1', 'garbage, 203.0.113.1']) {
        const refused = await upgradeRequest(gateway.port, '/subscribe', { 'x-forwarded-for': forged });
        assert.equal(refused.status, 429, `a forged first hop does not buy another slot: ${forged}`);
      }
      await first.close();
      await waitUntil(
        async () => (await upgradeRequest(gateway.port, '/subscribe', { 'x-forwarded-for': '198.51.100.9, 203.0.113.1' })).status === 101,
        'the client behind the proxy to get its slot back',
      );
    });

    test('behind two trusted proxies, the client is the second address from the right; no header means the socket address', async () => {
      const { gateway } = await start({ maxConnectionsPerIp: 1, trustProxy: 2 });
      await Subscription.open(gateway.port, '', { headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.1, 10.0.0.1' } });
      assert.equal((await upgradeRequest(gateway.port, '/subscribe', { 'x-forwarded-for': '198.51.100.2, 203.0.113.1, 10.0.0.2' })).status, 429);
      assert.equal((await upgradeRequest(gateway.port, '/subscribe', { 'x-forwarded-for': '203.0.113.1, 10.0.0.2' })).status, 429);
      await Subscription.open(gateway.port, '', { headers: { 'x-forwarded-for': '203.0.113.3, 10.0.0.1' } });
      await Subscription.open(gateway.port, '');
      assert.equal((await upgradeRequest(gateway.port, '/subscribe')).status, 429, '127.0.0.1 itself has its one slot');
    });

    test('pings every interval; a peer that does not answer is dropped, one that does stays', async () => {
      // A peer is dropped when a ping is still unanswered at the next one: the interval leaves
      // room for a busy event loop (client and server share this process).
      const { gateway } = await start({}, { hub: { pingIntervalMs: 300 } });
      const answering = await Subscription.open(gateway.port, '');
      const silent = await Subscription.open(gateway.port, '', { autoPong: false });
      const closed = await silent.waitClosed();
      assert.ok(silent.pingsReceived >= 1, 'the silent peer was pinged');
      assert.equal(closed.code, 1006, 'a dead peer is cut off without a close handshake');
      await waitUntil(() => answering.pingsReceived >= 3, 'more pings to the answering peer');
      await answering.roundTrip();
      assert.ok(answering.isOpen, 'the answering peer stays connected');
      assert.equal((await stats(gateway.port)).subscribers, 1);
    });

    test('/ready answers 503 with the reason while the upstream is down, /health stays 200', async () => {
      const { gateway, relay } = await start();
      await waitUntil(async () => (await httpGet(gateway.port, '/ready')).status === 200, '/ready');
      await relay.stop();
      // The reason, not just the verdict: the last dial's error, as the log has it.
      await waitUntil(
        async () => /^not ready: upstream not connected: connect ECONNREFUSED 127\.0\.0\.1:\d+$/.test((await httpGet(gateway.port, '/ready')).body.toString().trim()),
        '/ready to say why the upstream is not connected',
      );
      assert.equal((await httpGet(gateway.port, '/ready')).status, 503);
      assert.equal((await httpGet(gateway.port, '/health')).status, 200);
    });

    test('shutdown sends 1001 Going Away to every subscriber, whatever its state', async () => {
      const h = await start();
      const { gateway, up } = h;
      for (let i = 0; i < 50; i++) up.create(ALICE, POST);
      await up.settle();
      const subscribers = [
        await Subscription.open(gateway.port, ''),
        await Subscription.open(gateway.port, 'cursor=0&compress=true'),
        await Subscription.open(gateway.port, 'requireHello=true'),
        await Subscription.open(gateway.port, `wantedDids=${BOB}`),
      ];
      await Promise.all(subscribers.map((s) => s.roundTrip()));
      const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
      assert.equal((await getWith(keepAlive, gateway.port, '/stats')).status, 200);
      await h.stop();
      for (const s of subscribers) {
        const closed = await s.waitClosed();
        assert.equal(closed.code, 1001);
        assert.equal(closed.reason, 'server shutting down');
      }
      // Nothing is served once stopped, not even on a kept-alive HTTP connection (the store is closed).
      for (const path of ['/stats', '/health', '/subscribe']) {
        const status = await getWith(keepAlive, gateway.port, path).then((r) => r.status, () => 'refused');
        assert.ok(status === 'refused' || status === 503, `${path} after stop: ${status}`);
      }
      keepAlive.destroy();
    });

    test('after the wall clock stepped back, a cursor above "now" but issued before still replays (future = after the last time_us issued)', async () => {
      let entries: Entry[] = [];
      const { gateway } = await start({}, {}, async (dataDir) => {
        // Events stamped by a clock an hour ahead, as if the wall clock was later set back.
        const store = new EventStore({ dataDir, hotLogBytes: 1 << 20 });
        const clock = new CursorClock(0, () => wallClockMicros() + 3_600_000_000);
        entries = [1, 2, 3].flatMap((seq) => eventsOf(identityFrame({ seq, did: ALICE }), clock));
        await store.commit({ entries, revs: new Map() });
        await store.close();
      });
      const resumed = await Subscription.open(gateway.port, `cursor=${entries[1]!.timeUs}`);
      await resumed.waitForTime(entries[2]!.timeUs);
      assert.deepEqual(resumed.events.map((e) => e.time_us), [entries[1]!.timeUs, entries[2]!.timeUs]);
      const live = await Subscription.open(gateway.port, `cursor=${entries[2]!.timeUs + 1}`);
      await live.roundTrip();
      assert.equal(live.messages.length, 0, 'a cursor after the last issued time_us is live');
    });

    test('a cursor older than what retention kept starts at the oldest kept event, not ConsumerTooSlow', async () => {
      const h = await start();
      for (let i = 0; i < 30; i++) h.up.create(ALICE, POST, { ...recordFor(POST, i, ALICE), text: 'x'.repeat(10_000) });
      await h.up.settle();
      const trimmed = await readWholeStream(h.gateway.port);
      await h.gateway.stop();
      // Restarted with a size bound the old events exceed: retention trims the oldest at start,
      // keeping the newest that fit (never none).
      h.gateway = await startTestGateway(h.relay.url, h.dir.path, { transport, maxBufferBytes: 64 * 1024 });
      await h.relay.waitForConnections(2);
      // Retention's first pass runs in the background after start: wait for it, do not race it.
      let after = await stats(h.gateway.port);
      await waitUntil(async () => (after = await stats(h.gateway.port)).bytes <= 64 * 1024, 'retention to trim the buffer to the bound');
      const left = after.eventCount;
      assert.ok(left >= 1 && left < 30, `${left} events left`);
      assert.equal(after.trimmedUpTo, trimmed[30 - left - 1]!.timeUs);
      h.up.create(BOB, POST);
      h.up.create(BOB, LIKE);
      after = await h.up.settle();
      assert.equal(after.eventCount, left + 2);
      const kept = await readWholeStream(h.gateway.port);
      for (const cursor of [1, trimmed[0]!.timeUs, trimmed[10]!.timeUs]) {
        const s = await Subscription.open(h.gateway.port, `cursor=${cursor}`);
        await s.waitForTime(kept[1]!.timeUs);
        assert.deepEqual(s.texts, kept.map((e) => e.raw), `cursor=${cursor}`);
        await s.roundTrip();
        assert.ok(s.isOpen);
      }
    });
  });
}
