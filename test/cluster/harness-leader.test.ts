/**
 * The harness's ContrailCluster.leader() reads the lease holder from NATS until one holds it. A
 * read that NATS fails for a moment (the bucket's leader being elected, a server lost) must not
 * end the poll: a test asking for the leader in that moment would fail with the NATS error instead
 * of waiting to the poll's deadline. leaseHolder() answers a read NATS failed as no holder (the
 * KV handle is opened without a request, and the read's error is caught), so the poll goes on.
 * Here leader() is asked while the only NATS server is down, and the server comes back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

test('ContrailCluster.leader() waits through lease reads that NATS fails for a while, and names the leader', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a'], leaseMs: 1_000 });
  defer(() => cluster.stop());
  const [node] = cluster.members;
  assert.equal(await cluster.leader(), node);

  cluster.nats.kill(0);
  assert.equal(await cluster.leaseHolder(), undefined, 'while NATS is down the read names no holder, though the node holds the lease');
  const asked = cluster.leader();
  asked.catch(() => {}); // awaited below, once NATS is back
  cluster.nats.restart(0);
  await cluster.nats.waitReady();
  assert.equal(await asked, node, 'leader() waited for NATS, and names the node that leads');
});

/**
 * When no node comes to hold the lease, leader() times out. Its error said only what it waited
 * for, though every poll had failed on NATS with a reason (unreachable, the lease bucket gone, a
 * permission): the test's failure then reads as "no node led" when NATS was what failed. The
 * timeout must name the last NATS error the poll met. Here the only node is stopped and the lease
 * bucket removed, so every read fails on the missing bucket.
 */
test('ContrailCluster.leader() timing out names the last NATS error its lease reads met', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a'], leaseMs: 1_000 });
  defer(() => cluster.stop());
  await cluster.members[0]!.process.stop();
  await (await jetstreamManager(cluster.observer)).streams.delete('KV_contrail-leader');

  await assert.rejects(cluster.leader(3_000), (err: Error) => {
    assert.match(err.message, /timed out after 3000 ms waiting for a node to hold the ingest lease/);
    assert.match(err.message, /last NATS error: .*(not found|no responders)/i, `names what NATS answered: ${err.message}`);
    return true;
  });
});
