/**
 * contrail_upstream_seq is the last durable upstream seq: what the buffer holds, from the start.
 * After a restart on a buffer that holds events, before the relay sends anything new (a quiet
 * relay, or one that is down), it names the saved cursor's seq, as /stats does, not 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { ALICE, POST, Upstream, exposedMetric, stats } from './support/subscribe-client.ts';

test('after a restart contrail_upstream_seq names the saved cursor before anything new is read', { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir();
  defer(() => dir.remove());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const first = await startTestGateway(relay.url, dir.path);
  const up = new Upstream(relay, () => first.port);
  await relay.waitForConnections(1);
  for (let i = 0; i < 3; i++) up.create(ALICE, POST);
  await up.settle();
  assert.equal(await exposedMetric(first.metricsPort, 'contrail_upstream_seq'), 3);
  await first.stop();

  // The relay has nothing after seq 3: the restarted gateway reads nothing new.
  const second = await startTestGateway(relay.url, dir.path);
  defer(() => second.stop());
  assert.equal((await stats(second.port)).upstreamCursor?.seq, 3, '/stats names the saved cursor');
  assert.equal(await exposedMetric(second.metricsPort, 'contrail_upstream_seq'), 3, 'so does the metric');
});
