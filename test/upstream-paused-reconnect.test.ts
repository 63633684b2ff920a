/**
 * Ingest pauses the upstream socket while its queue is full (TCP backpressure), and a paused
 * socket reads nothing, pongs included. A connection that opens during such a pause, after a
 * failed one, has its opening ping answered by a live relay, but the answer waits unread: the
 * gateway must not blame the relay for that time (/ready saying it "has not answered a ping", the
 * backoff growing for a connection it never read), nor excuse a relay that never answers once it
 * reads again. Real sockets: a FakeRelay, reached through a HoldingProxy that shows what crossed
 * and cuts connections with an RST. A paused reader notices an RST at once only with nothing unread
 * in its kernel buffer ahead of it: so each connection is cut once the client has read all the
 * relay sent, or while the relay's answer waits in the proxy.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay, startMuteRelay } from './support/fake-relay.ts';
import { commitFrame, infoFrame, tidFor } from './support/frames.ts';
import { HoldingProxy } from './support/holding-proxy.ts';
import { waitUntil } from './support/poll.ts';
import { seqsOf, startClient, type LogLine } from './support/upstream-harness.ts';

/** An unmasked, empty WebSocket pong frame: what a relay answers the client's empty ping with. */
const PONG = Buffer.from([0x8a, 0x00]);
/** The first byte of a final ping frame, as the client sends it once a connection opens. */
const PING = 0x89;

const retries = (logs: LogLine[]) => logs.filter((line) => line.msg === 'upstream disconnected; reconnecting');

test('a connection opened while ingest is paused, after a failure: /ready does not say the relay left a ping unanswered, and losing it while still paused does not grow the backoff', async (t) => {
  const defer = cleanup(t);
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const proxy = await HoldingProxy.start(Number(new URL(relay.url).port));
  defer(() => proxy.close());
  const answered = new Set<number>();
  proxy.watch((connection, from, chunk) => {
    if (from === 'server' && chunk.includes(PONG)) answered.add(connection);
    // The connection opened while paused: the relay's answer to its opening ping waits in the proxy,
    // as unread as in the paused socket, and is lost with it when it is cut.
    if (connection === 2 && from === 'client' && chunk[0] === PING) proxy.hold('server');
  });
  const url = new URL(relay.url);
  url.port = String(proxy.port);
  // No connection here lives long enough to count as healthy: each one read and lost is a failure.
  const harness = startClient(url.href, { backoffBaseMs: 10, backoffMaxMs: 40, healthyAfterMs: 600_000 });
  defer(() => harness.client.stop());
  await waitUntil(() => harness.client.connected && answered.has(1), 'the first connection, its opening ping answered');
  // An #info after the pong (an answer, not progress: the connection is still not healthy). Once
  // the client hands it on, it has read everything the relay sent.
  relay.push({ bytes: infoFrame('Notice') });
  await waitUntil(() => harness.messages.some((message) => message.type === 'info'), 'the first connection read to its end');

  // Ingest's queue fills: reading pauses. Then the connection is lost.
  harness.client.pause();
  proxy.reset();
  await waitUntil(() => harness.client.connected && answered.has(2), 'a connection opened while paused, its opening ping answered by the relay');
  assert.equal(retries(harness.logs)[0]?.failures, 1, 'the first connection, read and lost, is a failure');
  assert.equal(harness.client.notIngesting, undefined, 'the relay answered; only the gateway has not read it yet');

  proxy.reset();
  proxy.release(); // nothing held is left: the next connection's bytes pass
  await waitUntil(() => retries(harness.logs).length === 2, 'the paused connection lost');
  assert.equal(retries(harness.logs)[1]?.failures, 1, 'a connection held paused all its life is no failure of the relay');

  // Reading again, the connection open now delivers.
  await waitUntil(() => harness.client.connected, 'a third connection');
  harness.client.resume();
  relay.push({ seq: 1, bytes: commitFrame({ seq: 1, repo: 'did:plc:abc', rev: tidFor(1), ops: [] }) });
  await waitUntil(() => seqsOf(harness.messages).includes(1), 'the frame pushed after resume');
  assert.equal(harness.client.notIngesting, undefined);
});

test('a relay that never answers, reached while ingest is paused, is still dropped as a failure once reading resumes', async (t) => {
  const defer = cleanup(t);
  const { server, url } = await startMuteRelay(defer);
  let dials = 0;
  let pauseAtDial = () => {};
  const harness = startClient(url, {
    pingIntervalMs: 200,
    healthyAfterMs: 5,
    backoffBaseMs: 10,
    backoffMaxMs: 40,
    // The second dial is made while ingest is paused (asked for its cursor just before it dials).
    resumeCursor: () => {
      if (++dials === 2) pauseAtDial();
      return undefined;
    },
  });
  pauseAtDial = () => harness.client.pause();
  defer(() => harness.client.stop());
  await waitUntil(() => retries(harness.logs).length === 1, 'the first connection dropped for its unanswered ping');
  await waitUntil(() => harness.client.connected && server.clients.size === 1, 'the second connection, opened while paused');
  assert.equal(retries(harness.logs).length, 1, 'no ping judged while paused');

  harness.client.resume();
  await waitUntil(() => retries(harness.logs).length === 2, 'the second connection dropped');
  assert.deepEqual(retries(harness.logs).map((line) => [line.cause, line.failures]), [['ping_timeout', 1], ['ping_timeout', 2]], 'the mute relay is a failure each time');
});
