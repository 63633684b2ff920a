/**
 * The lease bucket's entries expire after the lease (its max_age): that is what frees a dead
 * leader's lease. An operator who edits the bucket by hand (`nats kv edit`, `nats stream edit
 * KV_<name>-leader`) can take that away: with max_age 0 a leader that dies keeps the lease for
 * good. A node sets the bucket's settings only when it starts, so until session 19 the running
 * nodes never took over from a dead leader, and nothing ingested until a node was restarted. A
 * node that sees the same lease of another node outlive the lease must set the bucket's max_age
 * back, saying so, and take over.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { leadershipWithIdleIngest } from '../support/cluster-leadership.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';
import { capturingLogger } from '../support/upstream-harness.ts';

const LEASE_MS = 1_000;

test('a dead leader\'s lease in a bucket whose max_age was removed by hand is freed by a node that sets it back', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-lease-expiry-edited-');
  defer(() => dir.remove());
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = capturingLogger(lines, 'info');
  const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'edited' };

  // Node a takes the lease.
  const a = await openCluster({ ...options, nodeId: 'a' }, pino({ level: 'silent' }));
  defer(() => a.nc.close());
  const aLease = new LeaderLease(a.lease, 'a');
  assert.ok(await aLease.tryAcquire());
  const renewing = setInterval(() => void aLease.renew().catch(() => {}), LEASE_MS / 4);
  defer(() => clearInterval(renewing));

  // Node b runs beside it.
  const b = await openCluster({ ...options, nodeId: 'b' }, logger);
  defer(() => b.nc.close());
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const follower = new StreamFollower(b, store, dir.path, logger);
  await follower.start();
  defer(() => follower.stop());
  const { leadership, ingest } = leadershipWithIdleIngest({ connection: b, lease: new LeaderLease(b.lease, 'b'), follower, store, leaseMs: LEASE_MS, logger });
  leadership.start();
  defer(() => leadership.stop(0));

  // The bucket's max_age is removed by hand; node a renews its lease once more and dies (it never renews it again nor gives it up).
  const bucket = await a.jsm.streams.info('KV_edited-leader');
  await a.jsm.streams.update(bucket.config.name, { ...bucket.config, max_age: 0 });
  clearInterval(renewing);
  assert.ok(await aLease.renew(), 'node a still held the lease when the bucket was edited');

  await waitUntil(() => ingest.started, 'node b to lead', 20 * LEASE_MS).catch(() => {});
  assert.ok(ingest.started, `node b leads once node a's lease outlived the lease; it said: ${JSON.stringify(lines.map((line) => line.msg))}`);
  assert.ok(lines.some((line) => line.level >= 50 && /THE LEASE BUCKET edited-leader/.test(line.msg)), 'node b says it set the bucket back');
  assert.equal((await b.jsm.streams.info('KV_edited-leader')).config.max_age, LEASE_MS * 1e6, 'the bucket\'s entries expire after the lease again');
});
