/**
 * The cluster mode against real parts: a 3-server NATS JetStream cluster (Debian's nats-server)
 * and three `contrail serve --nats …` processes reading one FakeRelay on 127.0.0.1. Leaders are
 * killed, paused and resumed, a NATS server is killed, a node is away while the stream moves on;
 * after each, every node must hold exactly the upstream's ops, once each, in order, with the same
 * time_us and seq on every node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { stats, Subscription, waitUntil } from '../support/subscribe-client.ts';

const LEASE_MS = 2_000;

describe('cluster on NATS JetStream', { skip: natsServerMissing(), timeout: 600_000 }, () => {
  let cluster: ContrailCluster;

  before(async () => {
    cluster = await ContrailCluster.start({ natsServers: 3, nodeIds: ['a', 'b', 'c'], leaseMs: LEASE_MS });
  });

  after(async () => {
    await cluster?.stop();
  });

  test('every node ends with the same events, same time_us, same order', async () => {
    cluster.feed.push(600);
    const events = await cluster.assertConsistent();
    assert.ok(events.length >= 600);
  });

  test('a client that leaves one node resumes on another with its last time_us and misses nothing', async () => {
    const [a, b] = cluster.members;
    const first = await Subscription.open(a!.process.port, 'cursor=1');
    cluster.feed.push(200);
    await first.waitForCount(300, '300 events from node a');
    await first.close();
    const lastSeen = first.events.at(-1)!.time_us as number;
    for (const member of cluster.members) await cluster.settled(member);
    const total = (await stats(b!.process.port)).eventCount;
    const second = await Subscription.open(b!.process.port, `cursor=${lastSeen}`);
    const remaining = total - first.events.length + 1;
    await second.waitForCount(remaining, `${remaining} events from node b`);
    await second.close();
    assert.equal(second.events[0]!.time_us, lastSeen, 'the cursor is inclusive on every node');
    const joined = [...first.texts, ...second.texts.slice(1)];
    assert.deepEqual(joined, await cluster.allEvents(a!), 'the two halves are the whole stream, once each');
  });

  test('kill -9 of the leader 10 times during ingest: another node takes over, nothing lost or repeated', async (t) => {
    const takeovers: number[] = [];
    cluster.feed.flow(4);
    try {
      for (let kill = 0; kill < 10; kill++) {
        // The node appending, killed mid-ingest at a different point each time: once the stream
        // holds frames pushed 0–300 ms (at the feed's 200 frames/s) after now.
        const old = await cluster.appendedPast(cluster.feed.lastSeq + 20 * (kill % 4));
        const killedAt = Date.now();
        old.process.child.kill('SIGKILL');
        await old.process.exit;
        await cluster.newLeaderSince(old, killedAt);
        takeovers.push(Date.now() - killedAt);
        await cluster.restart(old);
      }
    } finally {
      cluster.feed.stop();
    }
    takeovers.sort((x, y) => x - y);
    t.diagnostic(`takeover after kill -9 (lease ${LEASE_MS} ms): median ${takeovers[5]} ms, max ${takeovers[9]} ms`);
    await cluster.assertConsistent();
  });

  test('a paused leader that wakes after a new leader took over appends nothing', async () => {
    const paused = await cluster.leader();
    cluster.feed.flow(2);
    try {
      const pausedAt = Date.now();
      const pushedBeforePause = cluster.feed.lastSeq;
      paused.process.child.kill('SIGSTOP');
      const { member: successor } = await cluster.newLeaderSince(paused, pausedAt);
      // The new leader appends frames pushed since the pause, which reach the paused leader's
      // socket too: it wakes with plenty to append, behind a stream that moved on without it.
      await cluster.appendedPast(pushedBeforePause, successor);
      const resumedFrom = paused.process.logs.length;
      paused.process.child.kill('SIGCONT');
      await paused.process.waitForLog('', 10_000, resumedFrom);
      await waitUntil(
        () => paused.process.logs.slice(resumedFrom).some((record) => /lost the ingest lease|another node appended/.test(record.msg)),
        `the woken leader to step down\n${paused.process.tail()}`,
      );
    } finally {
      cluster.feed.stop();
    }
    // The stream itself: after the new leader's marker, no batch from the paused node.
    const records = await cluster.streamRecords();
    let marker = records.length - 1;
    while (marker >= 0 && !(records[marker]!.type === 'leader' && records[marker]!.node !== paused.id)) marker--;
    assert.ok(marker >= 0, "the new leader's marker is in the stream");
    const late = records.slice(marker + 1).filter((record) => record.node === paused.id);
    assert.equal(late.length, 0, `${late.length} stream records from the deposed leader after the new leader's marker`);
    await cluster.assertConsistent();
  });

  test('one NATS server of three killed: ingest and serving go on', async () => {
    cluster.nats.kill(0);
    try {
      cluster.feed.push(300);
      await cluster.assertConsistent();
    } finally {
      cluster.nats.restart(0);
    }
    await cluster.nats.waitReady();
  });

  test('a node away while the stream moves on catches up when it returns', async () => {
    const leaderNow = await cluster.leader();
    const target = cluster.members.find((member) => member.id !== leaderNow.id)!;
    target.process.child.kill('SIGKILL');
    await target.process.exit;
    cluster.feed.push(2_000);
    await cluster.settled(leaderNow);
    await cluster.restart(target);
    await cluster.assertConsistent();
  });
});
