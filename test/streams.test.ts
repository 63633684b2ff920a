/**
 * The HTTP streams — /stream (Server-Sent Events) and /stream.ndjson — and the heartbeat,
 * against a real gateway (FakeRelay → ingest → LMDB → server) on 127.0.0.1, once per
 * transport. What they carry is compared with /subscribe's answer over the same buffer, and
 * with an independent brute-force filter; NDJSON is also read by the real `curl`.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, afterEach, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { HttpStream, StreamRefused } from './support/http-stream.ts';
import { runPacedStream } from './support/paced-stream.ts';
import {
  FOLLOW,
  LIKE,
  POST,
  Subscription,
  Upstream,
  queryFor,
  readWholeStream,
  recordFor,
  startRelayGateway,
  stats,
  stopRelayGateway,
  upgradeRequest,
  waitUntil,
  wants,
  type FilterSpec,
  type StoredEvent,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const did = (name: string) => `did:plc:${name.padEnd(24, 'a')}`;
const ALICE = did('alice');
const BOB = did('bob');
const NOBODY = did('nobody');

/** curl is part of the test environment (.ci/run installs it); say so plainly if it is missing. */
const CURL = await promisify(execFile)('curl', ['--version']).then(
  () => undefined,
  () => 'curl is not installed (.ci/run installs it)',
);

async function refusal(port: number, path: '/stream' | '/stream.ndjson', query: string, headers?: Record<string, string>): Promise<StreamRefused> {
  const error = await HttpStream.open(port, path, query, headers).then(
    (stream) => {
      stream.close();
      return undefined;
    },
    (err: unknown) => err,
  );
  assert.ok(error instanceof StreamRefused, `${path}?${query} is refused before streaming`);
  return error;
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`/stream and /stream.ndjson over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    let stream: StoredEvent[];

    before(async () => {
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport, hotCacheBytes: 32 * 1024 }, { hub: { heartbeatTickMs: 50 } }));
      for (const account of [ALICE, BOB]) {
        for (const collection of [POST, LIKE, FOLLOW]) up.create(account, collection);
        up.identity(account, 'someone.bsky.social');
      }
      up.create(BOB, POST, { ...recordFor(POST, 1, BOB), text: 'long '.repeat(200) });
      up.synthetic(200, 11);
      await up.settle();
      stream = await readWholeStream(gateway.port);
    });

    afterEach(async () => {
      HttpStream.closeAll();
      await Subscription.closeAll();
    });

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('SSE and NDJSON carry exactly what /subscribe sends for the same filters and cursor; SSE ids are time_us', async () => {
      const filters: FilterSpec[] = [
        {},
        { wantedCollections: [POST] },
        { wantedCollections: ['app.bsky.graph.*'], wantedDids: [ALICE, BOB] },
        { wantedDids: [BOB], maxMessageSizeBytes: 600 },
      ];
      for (const filter of filters) {
        const matching = stream.filter((e) => wants(filter, e));
        // From the oldest, and from the filter's second event (the cursor is inclusive).
        for (const cursor of [0, matching[1]!.timeUs]) {
          const expected = matching.filter((e) => e.timeUs >= cursor).map((e) => e.raw);
          const label = `${JSON.stringify(filter)} from cursor ${cursor}`;
          assert.ok(expected.length > 0, label);
          const ws = await Subscription.open(gateway.port, queryFor(filter, { cursor }));
          // limit = the expected count: the HTTP streams end by themselves when done.
          const query = queryFor(filter, { cursor, limit: expected.length });
          const [sse, ndjson] = await Promise.all([HttpStream.open(gateway.port, '/stream', query), HttpStream.open(gateway.port, '/stream.ndjson', query)]);
          await Promise.all([sse.ended, ndjson.ended]);
          await ws.waitForCount(expected.length, label);
          await ws.roundTrip();
          assert.deepEqual(ws.texts, expected, `/subscribe: ${label}`);
          assert.deepEqual(sse.events, expected, `/stream: ${label}`);
          assert.deepEqual(ndjson.events, expected, `/stream.ndjson: ${label}`);
          assert.deepEqual(ndjson.messages.map((m) => m.data), ['{"type":"open"}', ...expected], 'NDJSON holds its opening line, then the events and nothing else');
          assert.deepEqual(
            sse.messages.map((m) => m.id),
            expected.map((raw) => String(JSON.parse(raw).time_us)),
          );
          assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
          assert.match(String(ndjson.headers['content-type']), /^application\/x-ndjson/);
        }
      }
    });

    test('streams go on live after the replay, and Last-Event-ID is an inclusive cursor that wins over the URL’s', async () => {
      const query = `wantedCollections=${POST}`;
      const sse = await HttpStream.open(gateway.port, '/stream', query);
      // An NDJSON response starts with its first line: opened is not the same as answered.
      const opening = HttpStream.open(gateway.port, '/stream.ndjson', query);
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 2, 'both streams to be subscribed');
      up.create(ALICE, LIKE);
      up.create(ALICE, POST);
      up.create(BOB, POST);
      const { newestTimeUs } = await up.settle();
      const ndjson = await opening;
      await sse.waitForEvents(2);
      await ndjson.waitForEvents(2);
      assert.deepEqual(sse.events, ndjson.events);
      assert.deepEqual(sse.events.map((e) => JSON.parse(e).commit.collection), [POST, POST]);
      assert.equal(JSON.parse(sse.events[1]!).time_us, newestTimeUs);

      // EventSource reconnects to the same URL (with its old cursor) and a Last-Event-ID header.
      const resumeAt = sse.messages[0]!.id!;
      const resumed = await HttpStream.open(gateway.port, '/stream', `${query}&cursor=0&limit=2`, { 'last-event-id': resumeAt });
      await resumed.ended;
      assert.deepEqual(resumed.events, sse.events, 'resumed at the Last-Event-ID, inclusive');
    });

    test('bad parameters get HTTP 400 with a plain-text reason naming the parameter, on both streams', async () => {
      const cases: Array<[query: string, reason: RegExp, headers?: Record<string, string>]> = [
        ['wantedDids=bob', /^wantedDids: "bob" is not a valid DID/],
        ['wantedCollections=app.bsky.feed.p*st', /^wantedCollections: /],
        ['cursor=yesterday', /^cursor: "yesterday" is not a 64-bit integer/],
        ['limit=0', /^limit: "0" is not a whole number/],
        ['limit=ten', /^limit: "ten"/],
        ['heartbeat=0s', /^heartbeat: "0s" must be a duration from 1s to 60m/],
        ['heartbeat=soon', /^heartbeat: /],
        ['compress=true', /^compress=true needs a WebSocket: use \/subscribe/],
        ['requireHello=true', /^requireHello=true needs a WebSocket/],
        ['backfill=yes', /^backfill=yes: backfill needs a WebSocket/],
        ['', /^Last-Event-ID: "abc" is not a 64-bit integer/, { 'last-event-id': 'abc' }],
      ];
      for (const path of ['/stream', '/stream.ndjson'] as const) {
        for (const [query, reason, headers] of cases) {
          const refused = await refusal(gateway.port, path, query, headers);
          assert.equal(refused.status, 400, `${path}?${query}`);
          assert.match(refused.body, reason, `${path}?${query}`);
        }
      }
      const upgrade = await upgradeRequest(gateway.port, '/stream');
      assert.equal(upgrade.status, 400);
      assert.match(upgrade.body.toString(), /plain HTTP stream/);
      assert.equal((await stats(gateway.port)).subscribers, 0, 'no refused request became a subscriber');
    });

    test('NDJSON read by curl: limit=N ends the stream after N events and curl exits 0', { skip: CURL }, async () => {
      const filter: FilterSpec = { wantedCollections: [POST, FOLLOW] };
      const expected = stream.filter((e) => wants(filter, e)).slice(0, 5).map((e) => e.raw);
      const url = `http://127.0.0.1:${gateway.port}/stream.ndjson?${queryFor(filter, { cursor: 0, limit: 5 })}`;
      const { stdout } = await promisify(execFile)('curl', ['-sSN', '--fail', '--max-time', '30', url]);
      assert.deepEqual(stdout.split('\n'), ['{"type":"open"}', ...expected, ''], 'the opening line, then five lines, each one event, each ending in a newline');
    });

    test('curl -N on a live stream: it prints events as they come; when it is interrupted the server lets the subscriber go', { skip: CURL }, async () => {
      const curl = spawn('curl', ['-sSN', `http://127.0.0.1:${gateway.port}/stream.ndjson?wantedDids=${ALICE}`]);
      let output = '';
      curl.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 1, 'curl to be subscribed');
      up.create(ALICE, POST);
      const { newestTimeUs } = await up.settle();
      await waitUntil(() => output.endsWith('\n') && output.includes(`"time_us":${newestTimeUs}`), 'curl to print the live event');
      curl.kill('SIGINT');
      await once(curl, 'exit');
      await waitUntil(async () => (await stats(gateway.port)).subscribers === 0, 'the server to notice curl is gone');
    });

    test('heartbeat=1s: a quiet stream gets heartbeats on /subscribe, /stream and /stream.ndjson; their time_us resumes with no gap and no repeat', async () => {
      const quiet = `wantedDids=${NOBODY}&heartbeat=1s`;
      const ws = await Subscription.open(gateway.port, quiet);
      const sse = await HttpStream.open(gateway.port, '/stream', quiet);
      const ndjson = await HttpStream.open(gateway.port, '/stream.ndjson', quiet);
      const { newestTimeUs } = await stats(gateway.port);
      await ws.waitForCount(1, 'a heartbeat on /subscribe');
      const fromWs = JSON.parse(ws.texts[0]!);
      assert.deepEqual(fromWs, { type: 'heartbeat', time_us: newestTimeUs! + 1 });
      const fromSse = await sse.waitFor((m) => m.event === 'heartbeat', 'a heartbeat on /stream');
      assert.deepEqual(JSON.parse(fromSse.data), fromWs);
      assert.equal(fromSse.id, String(fromWs.time_us), 'an EventSource resumes from the heartbeat too');
      const fromNdjson = await ndjson.waitFor((m) => m.data.startsWith('{"type":"heartbeat"'), 'a heartbeat on /stream.ndjson');
      assert.deepEqual(JSON.parse(fromNdjson.data), fromWs);
      assert.deepEqual(sse.events, [], 'heartbeats are not events');

      up.create(BOB, LIKE);
      const next = await up.settle();
      const resumed = await HttpStream.open(gateway.port, '/stream.ndjson', `cursor=${fromWs.time_us}&limit=1`);
      await resumed.ended;
      assert.equal(JSON.parse(resumed.events[0]!).time_us, next.newestTimeUs, 'the first event after the heartbeat, nothing older');

      const noHeartbeat = await HttpStream.open(gateway.port, '/stream', `wantedDids=${NOBODY}`);
      await ws.waitForCount(3, 'more heartbeats');
      assert.deepEqual(noHeartbeat.messages, [], 'no heartbeat unless asked for');
    });

    test('a reader that stops reading is ended with an explicit ConsumerTooSlow message; what it got has no gap', async () => {
      const local = tempDir();
      const slowRelay = await FakeRelay.start();
      const highWaterBytes = 64 * 1024;
      const slowGateway = await startTestGateway(slowRelay.url, local.path, { transport }, { hub: { highWaterBytes, slowWindowMs: 1500 } });
      try {
        await slowRelay.waitForConnections(1);
        const slowUp = new Upstream(slowRelay, () => slowGateway.port);
        const slow = await HttpStream.open(slowGateway.port, '/stream', '');
        slow.socket.pause();
        const fast = await HttpStream.open(slowGateway.port, '/stream.ndjson', '');
        await waitUntil(async () => (await stats(slowGateway.port)).subscribers === 2, 'both readers to be subscribed');
        // One event of ~50 kB a burst (under the high-water mark) until the slow reader is
        // dropped: the stream fills the paused socket's kernel buffers and the mark, then moves
        // on while the slow reader does not. The fast one never falls behind (paced-stream.ts).
        let made = 0;
        await runPacedStream({
          burst: () => void slowUp.create(BOB, POST, { ...recordFor(POST, made, BOB), text: `${made++} ${'x'.repeat(50_000)}` }),
          received: () => fast.events.length >= made,
          done: async () => (await stats(slowGateway.port)).subscribers === 1,
          until: 'the slow reader to be dropped',
          timeoutMs: 120_000,
        });
        slow.socket.resume();
        await slow.ended;
        const last = slow.messages.at(-1)!;
        assert.equal(last.event, 'close', 'the last SSE message says why the stream ends');
        const error = JSON.parse(last.data);
        assert.equal(error.type, 'error');
        assert.equal(error.error, 'ConsumerTooSlow');
        const all = await readWholeStream(slowGateway.port);
        assert.deepEqual(slow.events, all.slice(0, slow.events.length).map((e) => e.raw), 'what the slow reader got has no gap');
        assert.ok(slow.events.length < all.length);
        await fast.waitForEvents(all.length);
        assert.deepEqual(fast.events, all.map((e) => e.raw), 'the fast reader lost nothing');
      } finally {
        HttpStream.closeAll();
        await slowGateway.stop();
        await slowRelay.stop();
        local.remove();
      }
    });
  });
}
