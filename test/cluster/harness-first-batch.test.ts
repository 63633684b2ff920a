/**
 * ContrailCluster.start must hand a test a cluster past its very start. A brand-new cluster's first
 * leader that loses its lease before its first batch reaches the stream leaves the next leader no
 * relay cursor to resume from, so it reads the relay live and what the first read is never read
 * again (README Cluster mode). Under load that happened on its own in cluster.test.ts and
 * lease-bucket-removed.test.ts, which then failed on frames the test had pushed. Here the first
 * leader is cut off from NATS right after the start, before the test pushes anything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

test('frames pushed after ContrailCluster.start are all held, though the first leader loses its lease before appending them', { skip: natsServerMissing(), timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 1_000, natsProxies: true });
  defer(() => cluster.stop());
  const first = await cluster.leader();

  const cutAt = Date.now();
  for (const proxy of first.natsProxies) proxy.hold('client', 'server');
  defer(() => first.natsProxies.forEach((proxy) => proxy.release()));
  // The cut-off leader reads these from the relay but cannot append them.
  cluster.feed.push(100);
  const { member: successor } = await cluster.newLeaderSince(first, cutAt);
  for (const proxy of first.natsProxies) proxy.release();

  cluster.feed.push(50);
  const events = await cluster.assertConsistent();
  assert.ok(events.length >= 150, `every frame the test pushed is held (${events.length} events; ${successor.id} took over)`);
});
