/**
 * FirehoseClient end to end against a FakeRelay on 127.0.0.1, with the real consumer (an
 * Ingester over an EventStore in a temp dir) deciding the resume cursor and discarding what it
 * already has: scripted streams, sockets dropped mid-stream, FutureCursor, quiet and dead
 * upstreams, backoff; and normalizeUpstreamUrl.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { EventStore } from '../src/store/event-store.ts';
import * as dagCbor from '@ipld/dag-cbor';
import { SOCKET_MAX_PAYLOAD } from '../src/upstream/firehose.ts';
import { normalizeUpstreamUrl } from '../src/upstream/url.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay, startMuteRelay } from './support/fake-relay.ts';
import { commitFrame, errorFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { SyntheticFirehose, type SyntheticFrame } from './support/synthetic.ts';
import {
  metricValue,
  seqsOf,
  startClient,
  startIngestRig,
  storedEvents,
  type IngestRig,
} from './support/upstream-harness.ts';

function push(relay: FakeRelay, frames: SyntheticFrame[]): void {
  for (const frame of frames) relay.push({ seq: frame.seq, bytes: frame.bytes });
}

const storedSeq = (rig: IngestRig) => rig.ingest.store.upstreamCursor?.seq;

/** Which stored events came from which frames: every frame's events once, in seq order. */
function assertStoredExactly(rig: IngestRig, frames: SyntheticFrame[]): void {
  const events = storedEvents(rig.ingest.store);
  assert.equal(events.length, frames.reduce((sum, f) => sum + f.events, 0), 'stored event count');
  const times = events.map((e) => e.time_us);
  assert.equal(new Set(times).size, times.length, 'time_us unique');
  assert.deepEqual(times, [...times].sort((a, b) => a - b), 'time_us increasing');
}

test('consumes a scripted stream end to end into the store', async (t) => {
  const r = await startIngestRig(t);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  const frames = new SyntheticFirehose({ seed: 11, accounts: 200 }).frames(300);
  push(r.relay, frames);
  await waitUntil(() => storedSeq(r) === 300, 'seq 300 to be stored');
  assert.deepEqual(seqsOf(r.harness.messages), frames.map((f) => f.seq));
  assertStoredExactly(r, frames);
  assert.equal(await metricValue(r.registry, 'contrail_ingest_drops_total'), 0);
  assert.deepEqual(r.relay.cursors, [undefined]);
});

test('the relay dropping the socket: the client reconnects with ?cursor=<last seq> and the store has no gap and no duplicate', async (t) => {
  const r = await startIngestRig(t);
  const synthetic = new SyntheticFirehose({ seed: 12, accounts: 200 });
  const first = synthetic.frames(100);
  const second = synthetic.frames(100);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  push(r.relay, first);
  await waitUntil(() => seqsOf(r.harness.messages).at(-1) === 100, 'seq 100 to arrive');

  // The relay cuts the TCP connection; while the client is away, the stream moves on.
  r.relay.dropClients();
  push(r.relay, second);
  await r.relay.waitForConnections(2);
  await waitUntil(() => storedSeq(r) === 200, 'seq 200 to be stored');
  assert.deepEqual(r.relay.cursors, [undefined, 100]);
  assert.deepEqual(seqsOf(r.harness.messages), [...first, ...second].map((f) => f.seq));
  assertStoredExactly(r, [...first, ...second]);
  assert.equal(await metricValue(r.registry, 'contrail_upstream_connects_total'), 2);
  assert.equal(await metricValue(r.registry, 'contrail_upstream_disconnects_total', { reason: 'closed' }), 1);
});

test('a cut while frames are in flight, and a relay replaying what was already stored: still no gap, no duplicate', async (t) => {
  const r = await startIngestRig(t);
  const synthetic = new SyntheticFirehose({ seed: 13, accounts: 200 });
  const frames = synthetic.frames(400);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  push(r.relay, frames.slice(0, 300));
  await waitUntil(() => r.harness.messages.length > 0, 'the first frames');
  r.relay.dropClients(); // wherever the stream happens to be
  await r.relay.waitForConnections(2);
  await waitUntil(() => storedSeq(r) === 300, 'seq 300 to be stored');
  // A relay that re-sends an overlap (as after its own restart): seqs 250..300 again, then new ones.
  push(r.relay, frames.slice(249, 300));
  push(r.relay, frames.slice(300));
  await waitUntil(() => storedSeq(r) === 400, 'seq 400 to be stored');
  const resumedFrom = r.relay.cursors[1]!;
  assert.ok(resumedFrom >= 1 && resumedFrom <= 300, `resumed from ${resumedFrom}`);
  assertStoredExactly(r, frames);
  const skipped = await metricValue(r.registry, 'contrail_ingest_skipped_total', { reason: 'duplicate_seq' });
  assert.ok(skipped >= 51, `${skipped} duplicates skipped`);
});

test('a record that breaks the data model is dropped, counted and logged; the rest of its commit is stored', async (t) => {
  const r = await startIngestRig(t);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  const did = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
  r.relay.push({
    seq: 1,
    bytes: commitFrame({
      seq: 1,
      repo: did,
      rev: tidFor(1),
      ops: [
        { action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s22', record: { $type: 'app.bsky.feed.post', text: 'fine' } },
        { action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s23', record: { $type: 'app.bsky.feed.post', score: 0.5 } },
      ],
    }),
  });
  await waitUntil(() => storedSeq(r) === 1, 'seq 1 to be stored');
  assert.deepEqual(storedEvents(r.ingest.store).map((e) => e.commit.rkey), ['3lbv2xh5u3s22']);
  assert.equal(await metricValue(r.registry, 'contrail_ingest_drops_total', { reason: 'bad_record' }), 1);
  assert.ok(r.ingestLogs.some((line) => line.level === 40 && line.path === 'app.bsky.feed.post/3lbv2xh5u3s23'), 'a warning naming the op');
});

test('FutureCursor: the client reconnects without a cursor, the Ingester forgets its watermark, and says so loudly', async (t) => {
  const relay = await FakeRelay.start();
  const dir = tempDir();
  t.after(async () => {
    await relay.stop();
    dir.remove();
  });
  // A store that last saw seq 500 from this relay; the relay (reset since) only got to 10.
  const seeded = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20 });
  await seeded.commit({ entries: [], revs: new Map(), cursor: { url: relay.url, seq: 500 } });
  await seeded.close();
  const synthetic = new SyntheticFirehose({ seed: 14, accounts: 50 });
  push(relay, synthetic.frames(10));

  const r = await startIngestRig(t, { relay, dataDir: dir.path });
  await relay.waitForConnections(2);
  assert.deepEqual(relay.cursors, [500, undefined]);
  assert.equal(await metricValue(r.registry, 'contrail_upstream_error_frames_total', { error: 'FutureCursor' }), 1);
  assert.ok(
    r.harness.logs.some((line) => line.level >= 50 && /FUTURE/.test(line.msg)),
    'an error-level log line saying the cursor is in the future',
  );
  await waitUntil(() => r.harness.client.connected, 'the client to reconnect');
  const live = synthetic.frames(5);
  push(relay, live);
  await waitUntil(() => storedSeq(r) === 15, 'the live frames to be stored');
  assert.deepEqual(seqsOf(r.harness.messages), [11, 12, 13, 14, 15]);
  assertStoredExactly(r, live);
});

test('a quiet upstream is normal: no exit, no reconnect, pings answered, and the next frame still arrives', async (t) => {
  // Not shorter: a ping unanswered within one interval ends the connection, and a loaded
  // machine can stall the event loop past a very short one.
  const r = await startIngestRig(t, { pingIntervalMs: 250 });
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  // Silence but for pings, each answered (as ws answers them), over several ping intervals.
  await waitUntil(() => r.relay.pings >= 4, 'four pings');
  assert.ok(r.harness.client.connected);
  assert.deepEqual(r.relay.cursors, [undefined]);
  assert.equal(await metricValue(r.registry, 'contrail_upstream_connects_total'), 1);
  assert.equal(await metricValue(r.registry, 'contrail_upstream_disconnects_total', { reason: 'closed' }), 0);
  push(r.relay, new SyntheticFirehose({ seed: 16 }).frames(1));
  await waitUntil(() => storedSeq(r) === 1, 'the frame after the silence');
});

test('an upstream that stops answering pings is dropped and redialled', async (t) => {
  const { server, url } = await startMuteRelay(cleanup(t));
  const connections: string[] = [];
  server.on('connection', (_socket, request) => connections.push(request.url ?? ''));
  const harness = startClient(url, { pingIntervalMs: 20, backoffBaseMs: 10, backoffMaxMs: 50 });
  t.after(() => harness.client.stop());
  await waitUntil(() => connections.length >= 2, 'a second connection after the unanswered ping');
  assert.ok(harness.logs.some((line) => /did not answer a ping/.test(line.msg)));
  assert.ok(harness.logs.some((line) => line.msg === 'upstream disconnected; reconnecting' && line.cause === 'ping_timeout'));
  assert.ok((await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'ping_timeout' })) >= 1);
});

test('a relay that accepts TCP but never answers the WebSocket handshake is abandoned and redialled with backoff', async (t) => {
  const held = new Set<Socket>();
  // Reads (and ignores) the upgrade request, so it also sees the client hang up.
  const silent = createServer((socket) => held.add(socket.resume().on('close', () => held.delete(socket))));
  let accepted = 0;
  silent.on('connection', () => accepted++);
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(async () => {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });
  const url = `ws://127.0.0.1:${(silent.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { handshakeTimeoutMs: 100, backoffBaseMs: 10, backoffMaxMs: 50 });
  t.after(() => harness.client.stop());
  await waitUntil(() => accepted >= 3, 'three dials of the silent relay');
  const retries = harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  assert.ok(retries.length >= 2);
  assert.deepEqual(retries.slice(0, 2).map((line) => [line.cause, line.failures]), [['handshake_timeout', 1], ['handshake_timeout', 2]], 'each timeout is a failure: the backoff grows');
  assert.ok((await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'handshake_timeout' })) >= 2);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_connects_total'), 0);
  assert.equal(harness.client.connected, false);
  assert.match(harness.client.problem ?? '', /^no WebSocket handshake within 100 ms$/);
  await waitUntil(() => held.size <= 1, 'abandoned dials to be closed, not leaked');
});

test('a frame too large for the socket (over 64 MiB) is counted, logged, and moved past: the client resumes after its seq', async (t) => {
  const r = await startIngestRig(t);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  const post = (seq: number) => ({ action: 'create' as const, path: `app.bsky.feed.post/${tidFor(seq)}`, record: { $type: 'app.bsky.feed.post', text: `post ${seq}`, createdAt: '2026-11-25T12:00:00.000Z' } });
  // seq 2 is a real #commit frame whose blocks alone exceed what the socket reads.
  const huge = Buffer.concat([
    dagCbor.encode({ op: 1, t: '#commit' }),
    dagCbor.encode({ ops: [], rev: tidFor(20), seq: 2, repo: `did:plc:${'h'.repeat(24)}`, time: new Date().toISOString(), blobs: [], blocks: new Uint8Array(SOCKET_MAX_PAYLOAD + 1024), since: null, commit: null, rebase: false, tooBig: true }),
  ]);
  r.relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:abc', rev: tidFor(1), ops: [post(1)] }) });
  r.relay.push({ seq: 2, bytes: huge });
  r.relay.push({ seq: 3, bytes: commitFrame({ seq: 3, repo: 'did:plc:abc', rev: tidFor(3), ops: [post(3)] }) });
  await waitUntil(() => storedSeq(r) === 3, 'seq 3, after the huge frame, to be stored', 60_000);
  assert.deepEqual(r.relay.cursors, [undefined, 2], 'the reconnect resumes after the huge frame, not before it');
  assert.deepEqual(seqsOf(r.harness.messages), [1, 3]);
  assert.deepEqual(storedEvents(r.ingest.store).map((e) => e.commit.record.text), ['post 1', 'post 3']);
  assert.equal(await metricValue(r.registry, 'contrail_ingest_drops_total', { reason: 'oversized' }), 1);
  assert.equal(await metricValue(r.registry, 'contrail_upstream_disconnects_total', { reason: 'oversized_frame' }), 1);
  assert.ok(r.harness.logs.some((line) => line.level === 50 && /^SKIPPED UPSTREAM FRAME seq 2: larger than 67108864 bytes/.test(line.msg)));
});

test('backoff: while nothing connects, the delay ceiling doubles per failure and is capped', async (t) => {
  // A port with nothing listening: every dial fails at once.
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));

  const base = 2;
  const max = 32;
  const harness = startClient(`ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos`, { backoffBaseMs: base, backoffMaxMs: max });
  t.after(() => harness.client.stop());
  const retries = () =>
    harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting').map((line) => ({ failures: line.failures as number, retryInMs: line.retryInMs as number }));
  await waitUntil(() => retries().length >= 16, '16 failed dials');
  const seen = retries().slice(0, 16);
  assert.deepEqual(seen.map((r) => r.failures), Array.from({ length: 16 }, (_, i) => i + 1), 'failures count up while nothing connects');
  for (const { failures, retryInMs } of seen) {
    const ceiling = Math.min(max, base * 2 ** failures);
    assert.ok(retryInMs >= 0 && retryInMs <= ceiling, `retry in ${retryInMs} ms after ${failures} failures (ceiling ${ceiling})`);
  }
  // Jitter is uniform below the ceiling: over the capped attempts some delay exceeds the first ceilings.
  const capped = seen.filter((r) => base * 2 ** r.failures >= max).map((r) => r.retryInMs);
  assert.ok(capped.length >= 10);
  assert.ok(Math.max(...capped) > base * 2, `capped delays ${capped} never grew past ${base * 2}`);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_connects_total'), 0);
  assert.ok((await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'error' })) >= 16);
});

test('tuning options passed as undefined keep their defaults', async (t) => {
  const relay = await FakeRelay.start();
  t.after(() => relay.stop());
  const harness = startClient(relay.url, { maxFrameBytes: undefined, pingIntervalMs: undefined, backoffBaseMs: undefined, backoffMaxMs: undefined });
  t.after(() => harness.client.stop());
  await waitUntil(() => harness.client.connected, 'the client to connect');
  const frames = new SyntheticFirehose({ seed: 19 }).frames(50);
  push(relay, frames);
  const oversized = commitFrame({ seq: 51, repo: 'did:plc:abc', rev: tidFor(51), ops: [{ action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s22', record: { $type: 'app.bsky.feed.post', text: 'x'.repeat(5 * 1024 * 1024) } }] });
  relay.push({ seq: 51, bytes: oversized });
  push(relay, new SyntheticFirehose({ seed: 20, firstSeq: 52 }).frames(1));
  await waitUntil(() => seqsOf(harness.messages).at(-1) === 52, 'seq 52');
  // The 5 MiB default limit held, and the 30 s default ping interval sent no ping in this time but the one at connect.
  assert.equal(await metricValue(harness.registry, 'contrail_ingest_drops_total', { reason: 'oversized' }), 1);
  assert.equal(relay.pings, 1);
  assert.deepEqual(relay.cursors, [undefined]);
});

test('an upstream that answers every connect with an error frame and a close meets a growing backoff', async (t) => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  server.on('connection', (socket) => {
    socket.send(errorFrame('ConsumerTooSlow', 'go away'));
    socket.close();
  });
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { backoffBaseMs: 1, backoffMaxMs: 8 });
  t.after(() => harness.client.stop());
  const retries = () => harness.logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');
  await waitUntil(() => retries().length >= 5, 'five refused connections');
  assert.deepEqual(retries().slice(0, 5).map((line) => [line.cause, line.failures]), [
    ['error_frame', 1],
    ['error_frame', 2],
    ['error_frame', 3],
    ['error_frame', 4],
    ['error_frame', 5],
  ]);
  assert.ok((await metricValue(harness.registry, 'contrail_upstream_error_frames_total', { error: 'ConsumerTooSlow' })) >= 5);
});

test('an error frame on a connection that then goes on delivering does not name the later close', async (t) => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
  let connections = 0;
  server.on('connection', (socket) => {
    if (++connections > 1) return; // the redial: held open until the test ends
    socket.send(errorFrame('ConsumerTooSlow', 'slow down'));
    socket.send(commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops: [{ action: 'create', path: `app.bsky.feed.post/${tidFor(1)}`, record: { $type: 'app.bsky.feed.post', text: 'after the error', createdAt: '2026-11-25T12:00:00.000Z' } }] }));
    setTimeout(() => socket.close(1000), 200);
  });
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/xrpc/com.atproto.sync.subscribeRepos`;
  const harness = startClient(url, { backoffBaseMs: 1, backoffMaxMs: 8 });
  t.after(async () => {
    await harness.client.stop();
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  });
  await waitUntil(() => harness.logs.some((line) => line.msg === 'upstream disconnected; reconnecting'), 'the close');
  assert.ok(seqsOf(harness.messages).includes(1), 'the commit after the error frame arrived');
  const line = harness.logs.find((l) => l.msg === 'upstream disconnected; reconnecting')!;
  assert.equal(line.cause, 'closed', 'a plain close after the relay went on delivering is not the error frame');
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'closed' }), 1);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'error_frame' }), 0);
});

test('after a connection that delivered frames, the next retry starts from the base delay again', async (t) => {
  const r = await startIngestRig(t);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  push(r.relay, new SyntheticFirehose({ seed: 17 }).frames(3));
  await waitUntil(() => storedSeq(r) === 3, 'seq 3 to be stored');
  r.relay.dropClients();
  await r.relay.waitForConnections(2);
  const retry = r.harness.logs.find((line) => line.msg === 'upstream disconnected; reconnecting') as { failures: number; retryInMs: number } | undefined;
  assert.ok(retry);
  assert.equal(retry.failures, 0);
  assert.ok(retry.retryInMs <= 10);
  assert.deepEqual(r.relay.cursors, [undefined, 3]);
});

test('pause() holds frames back (TCP backpressure) and resume() delivers them in order', async (t) => {
  const r = await startIngestRig(t);
  await r.relay.waitForConnections(1);
  await waitUntil(() => r.harness.client.connected, 'the client to connect');
  r.harness.client.pause();
  // A second, unpaused client of the same relay: once it has every frame, the relay has sent them
  // to both, and the paused one would have read them by then.
  const control = startClient(r.relay.url);
  t.after(() => control.client.stop());
  await r.relay.waitForConnections(2);
  await waitUntil(() => control.client.connected, 'the control client to connect');
  const frames = new SyntheticFirehose({ seed: 18 }).frames(20);
  push(r.relay, frames);
  await waitUntil(() => control.messages.length === frames.length, 'the control client to read every frame');
  assert.equal(r.harness.messages.length, 0, 'nothing read while paused');
  r.harness.client.resume();
  await waitUntil(() => storedSeq(r) === 20, 'seq 20 to be stored');
  assert.deepEqual(seqsOf(r.harness.messages), frames.map((f) => f.seq));
});

test('stop() closes the connection and nothing redials', async (t) => {
  const relay = await FakeRelay.start();
  t.after(() => relay.stop());
  const backoffMaxMs = 2;
  const harness = startClient(relay.url, { backoffBaseMs: 1, backoffMaxMs });
  await waitUntil(() => harness.client.connected, 'the client to connect');
  await harness.client.stop();
  assert.equal(harness.client.connected, false);
  // A redial would come at most backoffMaxMs after the close: twenty-five of those without one is none.
  await new Promise((resolve) => setTimeout(resolve, 25 * backoffMaxMs));
  assert.deepEqual(relay.cursors, [undefined]);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_disconnects_total', { reason: 'stopped' }), 1);
  // A commit pushed now reaches nobody.
  relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:abc', rev: tidFor(1), ops: [] }) });
  assert.equal(harness.messages.length, 0);
});

test('normalizeUpstreamUrl accepts what people type and returns the subscribeRepos WebSocket URL', () => {
  const path = '/xrpc/com.atproto.sync.subscribeRepos';
  const cases: Array<[string, string]> = [
    ['wss://bsky.network', `wss://bsky.network${path}`],
    ['wss://bsky.network/', `wss://bsky.network${path}`],
    [`wss://bsky.network${path}`, `wss://bsky.network${path}`],
    ['https://bsky.network', `wss://bsky.network${path}`],
    ['http://localhost:2470', `ws://localhost:2470${path}`],
    ['ws://127.0.0.1:2470', `ws://127.0.0.1:2470${path}`],
    [`http://127.0.0.1:2470${path}`, `ws://127.0.0.1:2470${path}`],
    ['bsky.network', `wss://bsky.network${path}`],
    ['relay.example.com:8443', `wss://relay.example.com:8443${path}`],
    ['HTTPS://Relay.Example.COM', `wss://relay.example.com${path}`],
    [`wss://bsky.network${path}?cursor=123`, `wss://bsky.network${path}`],
    [`wss://bsky.network${path}?cursor=123&x=1#frag`, `wss://bsky.network${path}?x=1`],
    ['wss://host.example/prefix', `wss://host.example/prefix${path}`],
    ['wss://host.example/prefix/', `wss://host.example/prefix${path}`],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeUpstreamUrl(input), expected, input);
  for (const bad of ['ftp://bsky.network', 'file:///etc/passwd', 'mailto://x@y', 'wss://', 'http://exa mple.com']) {
    assert.throws(() => normalizeUpstreamUrl(bad), Error, bad);
  }
});
