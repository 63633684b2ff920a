/**
 * A node reads the stream's leader markers as it applies the stream, and logged each change of
 * leader it read as 'a new ingest leader took over'. A node catching up after being away read the
 * changes made while it was away, minutes or hours old, and logged each as if it were happening
 * then: an operator reading that node's log saw failovers that were not going on. Changes read
 * while the stream already holds more after them are past ones, and are said to be (at debug); a
 * change that happens while the node follows the stream's end is still news (at info). So is a
 * change made before the node started whose marker is still the stream's last message (a relay
 * sending nothing since): read at the stream's end, it was logged as news.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster, type ClusterMember } from '../support/contrail-cluster.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

const NEW_LEADER = 'a new ingest leader took over';

test('a node catching up says the leader changes it reads from the stream are past ones; a change while it follows the end is news', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b', 'c'], leaseMs: 2_000, logLevel: 'debug' });
  defer(() => cluster.stop());
  cluster.feed.push(100);
  await cluster.assertConsistent();

  /** Kills the leader; resolves with it and the node that leads next. */
  const killLeader = async (): Promise<{ old: ClusterMember; successor: ClusterMember }> => {
    const old = await cluster.leader();
    const killedAt = Date.now();
    old.process.child.kill('SIGKILL');
    await old.process.exit;
    return { old, successor: (await cluster.newLeaderSince(old, killedAt)).member };
  };

  // A follower is away while the leader changes twice, with batches after each change.
  const leader = await cluster.leader();
  const away = cluster.members.find((member) => member !== leader)!;
  away.process.child.kill('SIGKILL');
  await away.process.exit;
  const changesWhileAway: string[] = [];
  for (let change = 0; change < 2; change++) {
    const { old, successor } = await killLeader();
    changesWhileAway.push(successor.id);
    await cluster.restart(old);
    cluster.feed.push(50);
    for (const member of cluster.members.filter((m) => m !== away)) await cluster.settled(member);
  }
  const streamEnd = (await cluster.lastStreamRecord())!.seq;

  const back = await cluster.restart(away);
  await cluster.settled(back);
  const node = back.process;
  const saidNew = node.logs.filter((record) => record.msg === NEW_LEADER && (record.seq as number) <= streamEnd);
  assert.deepEqual(saidNew, [], `no change read while catching up is logged as new: ${JSON.stringify(saidNew)}`);
  const saidPast = node.logs.filter((record) => /past change of ingest leader/.test(record.msg)).map((record) => record.leader);
  // Its position is saved about once a second, so a node killed soon after its last commit starts
  // a little early and may read again the marker of the term it was in when it left.
  const readAgain = saidPast.slice(0, saidPast.length - changesWhileAway.length);
  assert.ok(readAgain.every((id) => id === leader.id), `before the changes made while it was away, only ${leader.id}'s term, read again: ${JSON.stringify(saidPast)}`);
  assert.deepEqual(saidPast.slice(readAgain.length), changesWhileAway, 'each change made while it was away is said to be past, naming its leader');

  // A change while it follows the stream's end is logged as news.
  const from = node.logs.length;
  const { successor } = await killLeader();
  const news = await node.waitForLog((record) => record.msg === NEW_LEADER && record.leader === successor.id, 60_000, from);
  assert.ok(news.level >= 30, 'at info');
});

test("a change of leader made while a node was away is a past one also when its marker is still the stream's last message", { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b', 'c'], leaseMs: 2_000, logLevel: 'debug' });
  defer(() => cluster.stop());
  cluster.feed.push(100);
  await cluster.assertConsistent();

  // A follower is away while the leader changes, and the relay sends nothing after the change.
  const leader = await cluster.leader();
  const away = cluster.members.find((member) => member !== leader)!;
  away.process.child.kill('SIGKILL');
  await away.process.exit;
  const killedAt = Date.now();
  leader.process.child.kill('SIGKILL');
  await leader.process.exit;
  const { member: successor, began } = await cluster.newLeaderSince(leader, killedAt);
  const last = await cluster.lastStreamRecord();
  assert.deepEqual(last, { seq: began.markerSeq, record: { type: 'leader', node: successor.id } }, "the successor's marker is the stream's last message");

  const node = (await cluster.restart(away)).process;
  const said = await node.waitForLog((record) => record.leader === successor.id && record.seq === began.markerSeq, 60_000);
  assert.equal(said.msg, 'read a past change of ingest leader while catching up with the stream', `said as a past change: ${JSON.stringify(said)}`);
  assert.ok(said.level < 30, 'at debug');
  assert.equal(typeof said.at, 'string', 'with when it was made');
});
