/**
 * README invariant 1 across failovers between nodes whose clocks disagree: time_us is unique and
 * strictly increasing across the whole cluster, also when the new leader's wall clock is behind
 * the old one's. A leader stamps time_us as max(its clock, last + 1) from the last time_us the
 * stream holds (its buffer holds all of it when its term begins), so a leader two minutes behind
 * goes on from the last time_us, not from its own clock. Node b runs with its wall clock set
 * behind by libfaketime (clock-behind.ts), a process of the real contrail serve, as a
 * misconfigured machine would be; node a's is the machine's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { clockBehindEnv, libfaketimeMissing } from '../support/clock-behind.ts';
import { ContrailCluster, type ClusterMember } from '../support/contrail-cluster.ts';
import type { LogRecord } from '../support/contrail-process.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

const BEHIND_S = 120;
const LEADING = 'this node is the ingest leader';

/** Kills `old` (-9) and resolves once `next` begins a term after that (its own log's clock may be behind: lines are counted, not timed). */
async function failOver(old: ClusterMember, next: ClusterMember): Promise<LogRecord> {
  const from = next.process.logs.length;
  old.process.child.kill('SIGKILL');
  await old.process.exit;
  return next.process.waitForLog(LEADING, 60_000, from);
}

test('time_us keeps increasing across failovers to a leader whose clock is behind the old one\'s, and back', { skip: natsServerMissing() || libfaketimeMissing(), timeout: 300_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 2_000, env: { b: clockBehindEnv(BEHIND_S) } });
  defer(() => cluster.stop());
  const member = (id: string) => cluster.members.find((candidate) => candidate.id === id)!;

  // Node a leads first: if b took the lease at start, it hands it over.
  if ((await cluster.leader()).id === 'b') {
    await failOver(member('b'), member('a'));
    await cluster.restart(member('b'));
  }
  cluster.feed.push(300);
  await cluster.appendedPast(cluster.feed.lastSeq - 1, member('a'));

  // a dies; b, two minutes behind, leads.
  const bLeads = await failOver(member('a'), member('b'));
  const pushedToB = cluster.feed.lastSeq;
  cluster.feed.push(300);
  await cluster.appendedPast(pushedToB, member('b'));
  const aRestarted = await cluster.restart(member('a'));

  // b dies; a, its clock ahead again, leads.
  await failOver(member('b'), aRestarted);
  await cluster.restart(member('b'));
  cluster.feed.push(300);

  const events = await cluster.assertConsistent();
  assert.equal(new Set(events.map((text) => JSON.parse(text).time_us as number)).size, events.length, 'every time_us is unique');
  // The skew was there, and b went on from a's last time_us: its clock read before it when b took over.
  const stamped = (await cluster.streamRecords()).flatMap((record) => (record.type === 'batch' ? record.batch.entries.map((entry) => ({ node: record.node, timeUs: entry.timeUs })) : []));
  const handover = stamped.findIndex((entry, i) => entry.node === 'b' && stamped[i - 1]?.node === 'a');
  assert.ok(handover > 0, 'node b appended batches after node a');
  const lastOfA = stamped[handover - 1]!.timeUs;
  assert.ok(bLeads.time * 1_000 < lastOfA, `b's clock (${bLeads.time} ms when it took over) is behind a's last time_us (${lastOfA})`);
  assert.ok(stamped[handover]!.timeUs > lastOfA, `b's first time_us (${stamped[handover]!.timeUs}) follows a's last (${lastOfA})`);
});
