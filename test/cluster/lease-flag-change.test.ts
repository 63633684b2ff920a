/**
 * `--nats-lease` is the ingest lease's lifetime: the lease bucket's entries expire after it, and
 * the leader renews every third of it. The bucket is made by the first node that starts; a
 * cluster restarted with another `--nats-lease` must not keep the old lifetime. With a bucket
 * made at 5 s and nodes restarted at 30 s, every lease expired 5 s after each renewal, so the
 * leader lost it at its next renewal (10 s): a new term every 10 s, each one a marker, a pause and
 * the relay read again. The other way (30 s bucket, nodes at 2 s), a dead leader was replaced only
 * after 30 s. Found by review (an operator changing the flag as the README's row invites).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { capturingLogger } from '../support/upstream-harness.ts';

const OPTIONS = { replicas: 1, retentionMs: 3_600_000, name: 'leaseflag', nodeId: 'a' };

test('a node started with another --nats-lease gives the lease bucket that lifetime, and logs the change', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());

  const first = await openCluster({ ...OPTIONS, servers: nats.urls, leaseMs: 5_000 }, pino({ level: 'silent' }));
  assert.equal((await first.lease.status()).ttl, 5_000, 'the bucket is made with the first node\'s lease');
  await first.nc.close();

  const lines: Array<{ msg: string; [key: string]: unknown }> = [];
  const logger = capturingLogger(lines, 'info');
  const restarted = await openCluster({ ...OPTIONS, servers: nats.urls, leaseMs: 1_000 }, logger);
  defer(() => restarted.nc.close());
  assert.equal((await restarted.lease.status()).ttl, 1_000, 'the bucket\'s entries now expire after the new --nats-lease');
  const changed = lines.find((line) => /lease/.test(line.msg) && line.from === 5_000 && line.to === 1_000);
  assert.ok(changed, `a log line says the lease changed from 5000 to 1000 ms: ${JSON.stringify(lines)}`);
});
