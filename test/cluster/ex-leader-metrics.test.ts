/**
 * The ingest gauges are the reading node's: once a node's term ends it reads nothing, so it shows
 * no upstream lag (NaN, as a follower that never led), no events waiting for a commit and no
 * paused ingest. A leader cut off NATS ends its term when its append fails; after the partition
 * heals and it follows the new leader, it kept its last term's lag and pending bytes, values
 * an alert over the cluster's nodes would go on reading as if it still ingested.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { exposedMetric } from '../support/subscribe-client.ts';

test('a leader whose term ended shows no upstream lag, nothing pending and no paused ingest', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 2_000, natsProxies: true });
  defer(() => cluster.stop());
  const leader = await cluster.leader();
  const metricsPort = (await leader.process.waitForLog('serving Prometheus metrics at /metrics')).port as number;
  cluster.feed.flow(2);
  defer(() => cluster.feed.stop());
  await cluster.appendedPast(cluster.feed.lastSeq, leader);
  assert.ok(!Number.isNaN(await exposedMetric(metricsPort, 'contrail_upstream_lag_seconds')), 'the leader measures its lag');

  const cutAt = Date.now();
  for (const proxy of leader.natsProxies) proxy.hold('client', 'server');
  await leader.process.waitForLog((record) => record.time >= cutAt && /^(appending to the event stream failed|no lease renewal|lost the ingest lease)/.test(record.msg), 90_000);
  for (const proxy of leader.natsProxies) proxy.release();
  cluster.feed.stop();
  cluster.feed.push(50);
  for (const member of cluster.members) await cluster.settled(member);

  assert.equal(await exposedMetric(metricsPort, 'contrail_cluster_leader'), 0, 'it no longer leads');
  assert.ok(Number.isNaN(await exposedMetric(metricsPort, 'contrail_upstream_lag_seconds')), 'no lag: it reads nothing');
  assert.equal(await exposedMetric(metricsPort, 'contrail_ingest_pending_bytes'), 0, 'nothing waits for a commit');
  assert.equal(await exposedMetric(metricsPort, 'contrail_ingest_paused'), 0);
});
