/**
 * The ingest lease lives in a NATS KV bucket (`<name>-leader`) that the nodes make at start. If
 * it is removed while the cluster runs (an operator cleaning up NATS, `nats kv rm`), every lease
 * check fails from then on: nobody can renew or take the lease, the leader stops leading after
 * the lease time, and ingest stopped for good on every node, each logging `cluster lease check
 * failed (NATS unreachable?)` with `jetstream is not enabled` or `timeout` while NATS was
 * reachable and /ready answered 200. Found by review. The lease only elects (the stream fences),
 * so making the bucket again is safe, and the cluster must go on ingesting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

test('a lease bucket removed while the cluster runs is made again, and ingest goes on', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 1_000 });
  defer(() => cluster.stop());

  cluster.feed.push(200);
  for (const member of cluster.members) await cluster.settled(member);

  const leader = await cluster.leader();
  const removedAt = Date.now();
  await (await jetstreamManager(cluster.observer)).streams.delete('KV_contrail-leader');
  const remadeLine = () => cluster.members.flatMap((member) => member.process.logs).find((record) => record.time >= removedAt && /LEASE BUCKET .* WAS GONE/.test(String(record.msg)));
  // The old leader's lease went with the bucket: its term ends (a renewal replaces only its own
  // entry, even one at the revision it last wrote: lease-revision-collision.test.ts). Frames pushed
  // now would be read before the bucket is back; push them once a node made it again and holds the lease in it.
  const toldWhy = (err: Error) => {
    throw new Error(`${err.message}\n${cluster.story()}`);
  };
  await leader.process.waitForLog((record) => record.time >= removedAt && /stops leading|stopping ingest/.test(String(record.msg)), 30_000).catch(toldWhy);
  await waitUntil(() => remadeLine() !== undefined, 'a node to make the lease bucket again', 30_000).catch(toldWhy);
  await cluster.leader();
  cluster.feed.push(200);

  await cluster.assertConsistent();
  assert.match(String(remadeLine()!.msg), /contrail-leader/, 'the line names the bucket');
});
