/**
 * A node checks the ingest lease every third of the lease time. A check can fail for a moment: at
 * start, the first one often failed ('jetstream is not enabled': NATS had not yet elected a leader
 * for the lease bucket just made), and the next one passed. Each failure was a warning, 'cluster
 * lease check failed', the same line a NATS outage gives, so an operator read an error in every
 * healthy start. A failure that a retry shortly after clears is not one; checks that keep failing
 * still are, and their end is said too. Here the failure is made at a chosen moment: a follower's
 * NATS traffic is held in its proxy until a check's request times out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailCluster } from '../support/contrail-cluster.ts';
import type { LogRecord } from '../support/contrail-process.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';

const WARN = 40;
const isLeaseCheckFailure = (record: LogRecord) => record.msg.startsWith('cluster lease check failed');

test('a lease check that fails once and passes on a retry shortly after is no warning; checks failing past the retries are, and their recovery is said', { skip: natsServerMissing(), timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const cluster = await ContrailCluster.start({ natsServers: 1, nodeIds: ['a', 'b'], leaseMs: 2_000, natsProxies: true, logLevel: 'debug' });
  defer(() => cluster.stop());
  const leader = await cluster.leader();
  const follower = cluster.members.find((member) => member !== leader)!;
  const { process: node, natsProxies } = follower;
  // A node serves before it joins: its NATS traffic is held only once it follows the stream (it read
  // the leader's marker, appended before it started: a past change of leader, at debug).
  await node.waitForLog((record) => record.leader === leader.id && /ingest leader/.test(record.msg), 60_000);

  // One failure: the check's request times out in the proxy, and the proxy lets everything through again.
  let from = node.logs.length;
  natsProxies.forEach((proxy) => proxy.hold('client', 'server'));
  const failed = await node.waitForLog(isLeaseCheckFailure, 60_000, from);
  natsProxies.forEach((proxy) => proxy.release());
  assert.ok(failed.level < WARN, `a lease check failing once is not logged as a warning: ${JSON.stringify(failed)}`);
  const passed = await node.waitForLog('a cluster lease check passed on a retry', 60_000, from);
  assert.ok(passed.level < WARN);
  const warnings = node.logs.slice(from).filter((record) => record.level >= WARN && /lease/.test(record.msg));
  assert.deepEqual(warnings, [], 'no warning about the lease');

  // Failures past the retries: warned, then the checks passing again are said.
  from = node.logs.length;
  natsProxies.forEach((proxy) => proxy.hold('client', 'server'));
  const warned = await node.waitForLog((record) => isLeaseCheckFailure(record) && record.level >= WARN, 60_000, from);
  natsProxies.forEach((proxy) => proxy.release());
  assert.equal(typeof warned.failingForMs, 'number', `the warning says for how long the checks have failed: ${JSON.stringify(warned)}`);
  const recovered = await node.waitForLog('cluster lease checks pass again', 60_000, from);
  assert.ok(recovered.level >= 30 && recovered.level < WARN, 'said at info');
});
