/**
 * A follower restarts its stream consumer when it stopped delivering: behind the stream's end and
 * not moving at two checks 3 s apart (follower.ts #closeWhenStuck). Under load it fired 1–4 times
 * per node during a catch-up that went on fine, as a warning. It fired while the NATS client was
 * recovering the consumer by itself: the client makes an ordered consumer again (after a gap in
 * its deliveries, missed heartbeats, or the consumer lost), but its first pull asks only for what
 * it believes is still outstanding, and delivery then stalls until it has missed two idle
 * heartbeats — 2.5 s apart by default, so 5–7.5 s a round, and two rounds per recovery: 7–16 s
 * here, long enough for two checks. (That a busy catch-up ran this recovery — a gap in the
 * deliveries of a node too busy to read its connection — is the likely cause, not shown: a
 * follower throttled to 15% CPU never tripped the check.) Here the follower's consumer is deleted
 * on the server while events flow, a fault the client recovers from by itself; it must neither be
 * taken for a stopped consumer nor lose anything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { stats, waitUntil } from '../support/subscribe-client.ts';

const RECOVERIES = 4;
const STOPPED_DELIVERING = 'the cluster stream consumer stopped delivering';

test('a stream consumer the NATS client recovers by itself is not restarted as one that stopped delivering, and nothing is lost', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 2_000 });
  defer(() => cluster.stop());
  cluster.feed.push(50);
  await cluster.assertConsistent();
  const leader = await cluster.leader();
  const follower = cluster.members.find((member) => member !== leader)!;
  const jsm = await jetstreamManager(cluster.observer);
  const from = follower.process.logs.length;

  cluster.feed.flow(1);
  try {
    for (let i = 0; i < RECOVERIES; i++) {
      // The follower's is the stream's only consumer: the leader closes its own for its term.
      let consumers: string[] = [];
      await waitUntil(
        async () => {
          consumers = [];
          for await (const consumer of jsm.consumers.list('contrail-events')) consumers.push(consumer.name);
          return consumers.length > 0;
        },
        'the follower to read the stream through a consumer',
        30_000,
      );
      for (const name of consumers) await jsm.consumers.delete('contrail-events', name);
      const target = cluster.feed.lastSeq;
      await waitUntil(
        async () => ((await stats(follower.process.port)).upstreamCursor?.seq ?? 0) >= target,
        `node ${follower.id} to apply the stream again after its consumer was deleted (${i + 1} of ${RECOVERIES})\n${follower.process.tail()}`,
        60_000,
      );
    }
  } finally {
    cluster.feed.stop();
  }
  cluster.feed.push(20);
  await cluster.assertConsistent();
  const restarts = follower.process.logs.slice(from).filter((record) => record.msg.startsWith(STOPPED_DELIVERING));
  assert.deepEqual(restarts, [], `the client's own recoveries were not taken for a stopped consumer: ${JSON.stringify(restarts)}`);
});
