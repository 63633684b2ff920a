/**
 * A lease renewal reads the entry before its compare-and-set, to step down when another node's
 * lease stands at the very revision this node last wrote (a bucket made again numbers from 1:
 * lease-revision-collision.test.ts). That read was a direct get, which on a replicated bucket
 * (--nats-replicas 3) any replica may answer, one that has not yet applied the latest writes among
 * them: showing an older entry it ended healthy terms, and showing no entry (or an older one) it let
 * the very collision through, the renewal then replacing the new holder's entry (found by review,
 * twice). The read must be as current as the compare-and-set: answered by the bucket's stream
 * leader (a stream message get), which has every write acknowledged to any node.
 *
 * A lagging replica's answer cannot be produced on demand, so the test watches the wire instead: a
 * second connection subscribed to the JetStream API's subjects sees every request the renewals
 * send (the server hands a subscriber a copy of each), on a real bucket on a real nats-server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import pino from 'pino';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

test("a renewal reads the lease entry through the bucket's stream leader, never a direct get a lagging replica may answer: the collision after the bucket is made again steps down", { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 30_000, name: 'stale', nodeId: 'a' }, pino({ level: 'silent' }));
  defer(() => connection.nc.close());
  const watcher = await connect({ servers: nats.urls });
  defer(() => watcher.close());
  const requested: string[] = [];
  watcher.subscribe('$JS.API.>', { callback: (_err, msg) => void requested.push(msg.subject) });
  await watcher.flush();
  /** The JetStream API subjects the lease's bucket was asked on since the last call; the watcher's flush returns after every copy sent before it. */
  const requestsToBucket = async () => {
    await watcher.flush();
    return requested.splice(0).filter((subject) => subject.includes('KV_stale-leader')).map((subject) => subject.replace(/KV_stale-leader.*/, 'KV_stale-leader'));
  };
  const entry = async () => {
    const read = await connection.lease.get('leader');
    return read && { operation: read.operation, holder: read.string(), revision: read.revision };
  };

  const a = new LeaderLease(connection.lease, 'a');
  assert.ok(await a.tryAcquire());
  await requestsToBucket();
  assert.equal(await a.renew(), true);
  assert.deepEqual(await requestsToBucket(), ['$JS.API.STREAM.MSG.GET.KV_stale-leader'], 'the renewal read its entry from the stream leader (its compare-and-set is a publish, not an API request)');

  // The collision: the bucket removed and made again, node c's lease reaches node a's revision (2).
  await connection.jsm.streams.delete('KV_stale-leader');
  await connection.restoreMissing();
  const c = new LeaderLease(connection.lease, 'c');
  assert.ok(await c.tryAcquire());
  assert.equal(await c.renew(), true);
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'c', revision: 2 });
  await requestsToBucket();
  assert.equal(await a.renew(), false, "node a's renewal over node c's entry at its revision steps down");
  assert.deepEqual(await requestsToBucket(), ['$JS.API.STREAM.MSG.GET.KV_stale-leader'], 'read from the stream leader: no replica behind node c\'s take could answer it');
  assert.equal(a.held, false);
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'c', revision: 2 }, "node c's entry stands");
  assert.equal(await c.renew(), true, 'node c renews');
});
