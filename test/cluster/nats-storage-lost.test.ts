/**
 * A single NATS server (R1) whose storage is not kept — a container without a volume, a disk
 * replaced — comes back from a restart with no stream and no lease bucket, while every node runs
 * on and reconnects. The nodes made both only at their start, so ingest stopped until each node
 * was restarted by hand. Found by review (session 17). The first node whose lease check or
 * marker fails makes both again, every node reads the new stream from its start, and ingest goes
 * on from the nodes' buffers: nothing lost or repeated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

test('a NATS server restarted without its storage: the nodes make the stream and the lease bucket again, and ingest goes on with nothing lost', { skip: natsServerMissing(), timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 1_000 });
  defer(() => cluster.stop());
  for (let i = 0; i < 4; i++) {
    cluster.feed.push(50);
    for (const member of cluster.members) await cluster.settled(member);
  }

  const lostAt = Date.now();
  await cluster.nats.killLosingStorage(0);
  cluster.nats.restart(0);
  await cluster.nats.waitReady();
  cluster.feed.push(200);

  await cluster.assertConsistent();
  const logs = cluster.members.flatMap((member) => member.process.logs).filter((record) => record.time >= lostAt);
  assert.ok(logs.some((record) => /THE CLUSTER STREAM contrail-events WAS GONE/.test(String(record.msg))), 'a node says it made the stream again');
  assert.ok(logs.some((record) => /THE LEASE BUCKET contrail-leader WAS GONE/.test(String(record.msg))), 'a node says it made the lease bucket again');
});
