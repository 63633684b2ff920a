/**
 * The metrics that describe a node's buffer hold on every cluster node, not only on the one that
 * reads the relay: contrail_upstream_seq is the upstream seq its buffer holds (as its /stats
 * says), and contrail_store_events_total counts the events committed to its buffer. Followers
 * showed 0 for both while serving the same events as the leader, whose count was its appends to
 * the cluster's stream.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { exposedMetric, stats } from '../support/subscribe-client.ts';

test('every cluster node shows the upstream seq its buffer holds and counts the events committed to it', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 2_000 });
  defer(() => cluster.stop());
  const leader = await cluster.leader();
  cluster.feed.push(300);
  for (const member of cluster.members) await cluster.settled(member);

  for (const member of cluster.members) {
    const role = member === leader ? 'the leader' : 'a follower';
    const metricsPort = (await member.process.waitForLog('serving Prometheus metrics at /metrics')).port as number;
    const held = await stats(member.process.port);
    assert.equal(await exposedMetric(metricsPort, 'contrail_upstream_seq'), held.upstreamCursor?.seq, `${role}: the seq its buffer holds`);
    // Nothing is trimmed: every event committed to the buffer is in it.
    assert.equal(await exposedMetric(metricsPort, 'contrail_store_events_total'), held.eventCount, `${role}: the events committed to its buffer`);
  }
});
