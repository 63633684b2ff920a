/**
 * The cluster's event stream (`<name>-events`) is made by the nodes at start. If it is removed
 * while the cluster runs (an operator cleaning up NATS, `nats stream rm`; or its storage lost
 * with the NATS server's, R1), every append and every marker fails from then on, and the nodes
 * only made it again at their next start. A node's follower that then found the stream made
 * again (by a node restarted) went on from the seq its buffer held of the old one: it waited for
 * the new stream to reach that seq, missing every batch before it. Found by review (session 17).
 * As with the lease bucket, the stream must be made again while the cluster runs, and every
 * node must read the new one from its start, so that ingest goes on and nothing is lost. The
 * leader, whose append meets it first, must say so (session 17 left it naming NATS's answer,
 * `jetstream is not enabled`, first).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

test('a cluster stream removed while the cluster runs is made again, every node reads it from its start, and ingest goes on', { skip: natsServerMissing(), timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 1_000 });
  defer(() => cluster.stop());

  // Batch by batch, so the old stream holds more messages than the new one will by the end: a
  // follower going on at its old seq would wait for the new stream to get there.
  for (let i = 0; i < 8; i++) {
    cluster.feed.push(25);
    for (const member of cluster.members) await cluster.settled(member);
  }

  const leader = await cluster.leader();
  const jsm = await jetstreamManager(cluster.observer);
  const removedAt = Date.now();
  await jsm.streams.delete('contrail-events');
  // The leader learns of it at its next append, which fails: its term ends, and what it read is
  // read again from the relay by the next term. What it says first is what happened: NATS answers
  // a publish nothing takes with 'jetstream is not enabled', which once came first (session 17).
  cluster.feed.push(200);
  const gone = /CLUSTER STREAM contrail-events WAS GONE/;
  await leader.process.waitForLog((record) => record.time >= removedAt && gone.test(String(record.msg)), 30_000);
  const said = leader.process.logs.filter((record) => record.time >= removedAt && record.level >= 40);
  assert.match(String(said[0]!.msg), gone, `the leader's first warning says the stream was gone, not: ${JSON.stringify(said.slice(0, 2))}`);
  assert.ok(!said.some((record) => /jetstream is not enabled/i.test(JSON.stringify(record))), 'no line blames JetStream not being enabled');
  await waitUntil(() => jsm.streams.info('contrail-events').then(() => true, () => false), 'a node to make the cluster stream again', 30_000).catch((err: Error) => {
    throw new Error(`${err.message}:\n${cluster.members.map((member) => member.process.tail(6)).join('\n')}`);
  });
  cluster.feed.push(200);

  await cluster.assertConsistent();
  const remade = cluster.members.flatMap((member) => member.process.logs).find((record) => record.time >= removedAt && /CLUSTER STREAM contrail-events WAS GONE/.test(String(record.msg)));
  assert.ok(remade, 'a node logs that it made the stream again, naming it');
  for (const member of cluster.members) {
    const reread = member.process.logs.find((record) => record.time >= removedAt && /THE CLUSTER STREAM WAS MADE AGAIN/.test(String(record.msg)));
    assert.ok(reread, `node ${member.id} says it reads the stream made again from its start`);
  }
});
