/**
 * With --verify the verification gauges are the reading node's too: a cluster leader whose term
 * ends judges nothing more, so it shows no repo out of sync, none held and nothing queued, as a
 * follower that never led. Its term's Verifier is dropped with the term, and its counts went on
 * being shown (test/cluster/ex-leader-metrics.test.ts settled the ingest gauges, not these): an
 * alert on contrail_verify_out_of_sync_repos over the cluster's nodes would keep firing for a
 * node that no longer verifies anything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { localHttpServer } from '../support/local-http.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { exposedMetric, waitUntil } from '../support/subscribe-client.ts';
import { didDocument } from '../support/verifier-harness.ts';

/** A K-256 key that signed none of the synthetic relay's commits: each fails its signature check. */
const KEY = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme';
const GAUGES = ['contrail_verify_out_of_sync_repos', 'contrail_verify_held_repos', 'contrail_verify_held_bytes', 'contrail_verify_queued'];

test('a leader whose term ended shows no repo out of sync, none held and nothing queued for verification', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const defer = cleanup(t);
  // Every DID's document names a key that signed none of its commits: each repo goes out of sync.
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), KEY)));
  const cluster = await ContrailCluster.start({
    natsServers: 1,
    nodeIds: ['a', 'b'],
    leaseMs: 2_000,
    natsProxies: true,
    args: ['--verify', 'signatures', '--plc-url', plcUrl, '--verify-resyncs', '0'],
  });
  defer(() => cluster.stop());
  const leader = await cluster.leader();
  const metricsPort = (await leader.process.waitForLog('serving Prometheus metrics at /metrics')).port as number;
  cluster.feed.flow(2);
  defer(() => cluster.feed.stop());
  await waitUntil(async () => (await exposedMetric(metricsPort, 'contrail_verify_out_of_sync_repos')) > 0, 'the leader to find repos out of sync', 60_000);

  const cutAt = Date.now();
  for (const proxy of leader.natsProxies) proxy.hold('client', 'server');
  await leader.process.waitForLog((record) => record.time >= cutAt && /^(appending to the event stream failed|no lease renewal|lost the ingest lease)/.test(record.msg), 90_000);
  for (const proxy of leader.natsProxies) proxy.release();
  cluster.feed.stop();
  // It follows the stream again: its buffer holds the stream's end, written by the node that took over.
  await waitUntil(async () => {
    const last = await cluster.lastStreamRecord();
    return last !== undefined && last.record.node !== leader.id && (await exposedMetric(metricsPort, 'contrail_cluster_stream_applied_seq')) >= last.seq;
  }, 'the node that led to follow the new leader', 90_000);

  assert.equal(await exposedMetric(metricsPort, 'contrail_cluster_leader'), 0, 'it no longer leads');
  for (const gauge of GAUGES) assert.equal(await exposedMetric(metricsPort, gauge), 0, `${gauge}: it verifies nothing now`);
});
