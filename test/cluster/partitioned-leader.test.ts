/**
 * A partitioned ingest leader: it runs on, reading the relay and publishing batches, while its
 * connection to NATS carries nothing — past its lease, while another node is elected and appends.
 * The node cut is whichever leads at that moment: the lease holder whose batch is the stream's
 * newest message, and the lease still names it once it is cut (it can no longer renew). Its own
 * proxy holds what it sends to NATS; answers already on their way still reach it, so it publishes
 * its next batch into the partition (with two appends in flight it may be waiting on both acks
 * when cut, and would otherwise publish nothing while cut off), and from then on nothing crosses
 * either way. The TCP connection stays open: the node is not crashed and sees no disconnect.
 * When the partition heals, everything it published meanwhile reaches nats-server after the new
 * leader's marker, and each publish must be refused there — read off the wire, so a publish the
 * deposed leader stopped waiting for counts too. Two rounds, the second cutting the leader the
 * first elected: the first heals once the new leader has appended, so the cut-off leader learns
 * from the refusals that it was replaced; the second only after the cut-off leader stepped down
 * by itself (its publishes or its lease renewal timed out). Then every node holds the upstream's
 * ops once each, in order, byte for byte the same, time_us increasing, and in the stream every
 * batch follows its own leader's marker.
 *
 * A leader cut off while the relay is quiet has no append to fail: it stops leading when a lease
 * renewal fails past the lease, and must say so (it ended its term with no line saying it did).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContrailCluster, type ClusterMember } from '../support/contrail-cluster.ts';
import type { ProxySide } from '../support/holding-proxy.ts';
import { JetStreamPublishWatch, type WatchedPublish } from '../support/jetstream-publish-watch.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

const LEASE_MS = 2_000;
const SUBJECT = 'contrail.events';
/** Lines a leader logs when its term ends for a reason other than a stop. */
const STEPPED_DOWN = /^(lost the ingest lease|another node appended|appending to the event stream failed|this term ends|no lease renewal)/;

interface Cut {
  leader: ClusterMember;
  cutAt: number;
  /** How many publishes to the stream the leader's proxy had seen before the cut. */
  publishedBefore: number;
}

/**
 * Holds what the node that leads now sends to NATS (`from` 'client'), or receives too ('server');
 * tries again if the lease moved while it was cut. `watches` count what it published before.
 */
async function cutTheLeader(cluster: ContrailCluster, from: ProxySide[], watches?: Map<string, JetStreamPublishWatch>): Promise<Cut> {
  for (let attempt = 1; ; attempt++) {
    let leader: ClusterMember | undefined;
    await waitUntil(
      async () => {
        leader = await cluster.leaseHolder();
        const last = await cluster.lastStreamRecord();
        return leader !== undefined && last?.record.type === 'batch' && last.record.node === leader.id;
      },
      'the lease holder to be appending',
      60_000,
    );
    const publishedBefore = watches?.get(leader!.id)!.publishes.length ?? 0;
    const cutAt = Date.now();
    for (const proxy of leader!.natsProxies) proxy.hold(...from);
    // Cut off, it can no longer renew: the lease naming it now shows it led when it was cut.
    if ((await cluster.leaseHolder())?.id === leader!.id) return { leader: leader!, cutAt, publishedBefore };
    for (const proxy of leader!.natsProxies) proxy.release();
    if (attempt === 5) throw new Error('the lease moved each time a leader was cut');
  }
}

const describeAnswer = (publish: WatchedPublish) =>
  publish.answer === undefined ? 'no answer' : 'stored' in publish.answer ? `stored at seq ${publish.answer.stored}` : `refused: ${publish.answer.refused}`;

test('a leader cut off NATS past its lease while another is elected and appends: each publish it made meanwhile is refused by nats-server when the partition heals, and nothing is lost or repeated', { skip: natsServerMissing(), timeout: 600_000 }, async (t) => {
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b', 'c'], leaseMs: LEASE_MS, natsProxies: true });
  t.after(() => cluster.stop());
  const watches = new Map(cluster.members.map((member) => [member.id, new JetStreamPublishWatch(member.natsProxies[0]!, SUBJECT)]));
  cluster.feed.flow(2);
  try {
    for (const [round, stepsDownWhileCut] of [[1, false], [2, true]] as const) {
      // What it sends waits in the proxy; the answers already on their way reach it (see above).
      const { leader, cutAt, publishedBefore } = await cutTheLeader(cluster, ['client'], watches);
      const watch = watches.get(leader.id)!;
      await waitUntil(() => watch.publishes.length > publishedBefore, `node ${leader.id} to publish to the stream while cut off`, 60_000);
      for (const proxy of leader.natsProxies) proxy.hold('server');
      const { member: successor, began } = await cluster.newLeaderSince(leader, cutAt);
      const markerSeq = began.markerSeq as number;
      await waitUntil(
        async () => ((await cluster.lastStreamRecord())?.seq ?? 0) > markerSeq,
        `node ${successor.id} to append after its marker (seq ${markerSeq})`,
        60_000,
      );
      const stepDown = () => leader.process.waitForLog((record) => record.time >= cutAt && STEPPED_DOWN.test(record.msg), 60_000);
      let steppedDown = stepsDownWhileCut ? await stepDown() : undefined;
      const sentWhileCut = watch.publishes.slice(publishedBefore);
      const healedAt = Date.now();
      for (const proxy of leader.natsProxies) proxy.release();

      await waitUntil(
        () => sentWhileCut.every((publish) => publish.answer !== undefined),
        `nats-server to answer the ${sentWhileCut.length} publishes node ${leader.id} made while cut off`,
        60_000,
      );
      assert.deepEqual(
        sentWhileCut.map(describeAnswer).filter((answer) => !/^refused: wrong last (sequence|msg id)/i.test(answer)),
        [],
        `round ${round}: what node ${leader.id} published while cut off, all after node ${successor.id}'s marker (seq ${markerSeq}), is refused`,
      );
      steppedDown ??= await stepDown();
      t.diagnostic(
        `round ${round}: cut ${leader.id}; ${successor.id} led ${began.time - cutAt} ms later (marker seq ${markerSeq}); ` +
          `healed after ${healedAt - cutAt} ms; ${sentWhileCut.length} publishes made while cut off, all refused; ${leader.id} logged "${steppedDown.msg}"`,
      );
    }
  } finally {
    cluster.feed.stop();
  }
  cluster.feed.push(100);
  await cluster.assertConsistent();
  await assertEveryBatchAfterItsLeadersMarker(cluster);
});

test('a leader cut off NATS while the relay is quiet (no append in flight) says that it stops leading once its lease ran out unrenewed, before the partition heals', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: LEASE_MS, natsProxies: true });
  t.after(() => cluster.stop());
  cluster.feed.push(100);
  for (const member of cluster.members) await cluster.settled(member);
  const { leader, cutAt } = await cutTheLeader(cluster, ['client', 'server']);
  const { member: successor } = await cluster.newLeaderSince(leader, cutAt);
  const steppedDown = await leader.process.waitForLog((record) => record.time >= cutAt && STEPPED_DOWN.test(record.msg), 60_000);
  t.diagnostic(`cut ${leader.id}; ${successor.id} took over; ${leader.id} logged "${steppedDown.msg}" ${steppedDown.time - cutAt} ms after the cut`);
  for (const proxy of leader.natsProxies) proxy.release();
  cluster.feed.push(100);
  await cluster.assertConsistent();
  await assertEveryBatchAfterItsLeadersMarker(cluster);
});

async function assertEveryBatchAfterItsLeadersMarker(cluster: ContrailCluster): Promise<void> {
  let markedBy: string | undefined;
  const strays: string[] = [];
  for (const [i, record] of (await cluster.streamRecords()).entries()) {
    if (record.type === 'leader') markedBy = record.node;
    else if (record.node !== markedBy) strays.push(`message ${i + 1}: a batch of ${record.node} after ${markedBy}'s marker`);
  }
  assert.deepEqual(strays, [], "every batch in the stream follows its own leader's marker");
}
