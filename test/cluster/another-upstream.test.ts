/**
 * Clusters share one NATS by their --nats-name. A node of a second cluster started without its
 * own name (both on the default) joins the first cluster's stream: it serves that cluster's
 * events, and once it takes the lease it reads its own relay into that stream, so two networks
 * mix under one numbering. It said so only when it first led (`the saved upstream cursor belongs
 * to another upstream`, a warning), perhaps days later. Found by review. A node whose --upstream
 * is not the one the stream is read from must say so at start, naming both and --nats-name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { tempDir } from '../support/gateway.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

test('a node whose --upstream is not the one the cluster stream is read from says so at start', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a'], leaseMs: 1_000 });
  defer(() => cluster.stop());
  cluster.feed.push(100);
  await cluster.settled(cluster.members[0]!);

  const dir = tempDir('contrail-another-upstream-');
  defer(() => dir.remove());
  const other = ContrailProcess.serve(['--upstream', 'demo', '--data-dir', dir.path, '--nats', cluster.nats.urls.join(','), '--nats-replicas', '1', '--nats-lease', '1s', '--node-id', 'other']);
  defer(() => other.stop());
  await other.waitForLog('joined the contrail cluster');

  const said = await other.waitForLog((record) => /--upstream/.test(String(record.msg)) && /--nats-name/.test(String(record.msg)), 20_000);
  assert.equal(said.level, 50, 'at error level');
  assert.equal(said.upstream, 'demo', 'naming this node\'s upstream');
  assert.equal(said.streamUpstream, cluster.relay.url, 'and the one the stream is read from');
});
