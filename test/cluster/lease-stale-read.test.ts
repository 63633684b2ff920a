/**
 * A lease renewal reads the entry before its compare-and-set, to step down when another node's
 * lease stands at the very revision this node last wrote (a bucket made again numbers from 1:
 * lease-revision-collision.test.ts). The bucket serves that read as a direct get, which on a
 * replicated bucket (--nats-replicas 3) any replica may answer, one that has not yet applied this
 * node's last renewal among them: it shows an older entry. A renewal that stepped down on any entry
 * but its own at its last revision then ended a healthy leader's term (found by review: churn and an
 * ingest gap on a loaded R3 cluster). Only the collision the read is for may end it; any other
 * entry the read shows is left to the compare-and-set, which the bucket's stream leader answers.
 *
 * A lagging replica's answer cannot be produced on demand, so the read alone is the test's: the
 * lease's bucket is a real one on a real nats-server, whose `get` answers with an entry the test
 * read from that bucket earlier (what a replica that had not applied the later writes would answer).
 * Every write, the renewal's compare-and-set included, is the real bucket's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KV, KvEntry } from '@nats-io/kv';
import pino from 'pino';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

/** The real bucket, whose reads answer the entry given to `answerWith` (read from it before; null for none) until `readCurrent`. */
function bucketReadingStale(kv: KV): { kv: KV; answerWith(entry: KvEntry | null): void; readCurrent(): void } {
  let stale: KvEntry | null | undefined;
  const reading = new Proxy(kv, {
    get(target, property) {
      if (property === 'get' && stale !== undefined) return async () => stale;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { kv: reading, answerWith: (entry) => void (stale = entry), readCurrent: () => void (stale = undefined) };
}

test('a renewal whose read of the lease entry is stale (an older entry, as a lagging replica answers) keeps the lease: the compare-and-set decides', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 30_000, name: 'stale', nodeId: 'a' }, pino({ level: 'silent' }));
  defer(() => connection.nc.close());
  const bucket = bucketReadingStale(connection.lease);
  const entry = async () => {
    const read = await connection.lease.get('leader');
    return read && { operation: read.operation, holder: read.string(), revision: read.revision };
  };

  // Node b held the lease and gave it up; node a took it after.
  const b = new LeaderLease(connection.lease, 'b');
  assert.ok(await b.tryAcquire());
  const bsEntry = await connection.lease.get('leader');
  await b.release();
  const a = new LeaderLease(bucket.kv, 'a');
  assert.ok(await a.tryAcquire());
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'a', revision: 3 });

  // A read that shows node b's entry from before node a took the lease.
  bucket.answerWith(bsEntry);
  assert.equal(await a.renew(), true, "a read showing another node's older entry does not end node a's lease");
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'a', revision: 4 }, 'node a renewed it');

  // A read that shows node a's own entry, from before its last renewal.
  bucket.readCurrent();
  const asOlderEntry = await connection.lease.get('leader');
  assert.equal(await a.renew(), true);
  bucket.answerWith(asOlderEntry);
  assert.equal(await a.renew(), true, "a read showing node a's own entry at an older revision does not end its lease");
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'a', revision: 6 }, 'node a renewed it');
  assert.equal(a.held, true);

  // A read that shows no entry (not yet applied its take): the compare-and-set still renews.
  bucket.answerWith(null);
  assert.equal(await a.renew(), true, 'a read showing no entry does not end its lease');
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'a', revision: 7 });

  // The compare-and-set still refuses a renewal over an entry that moved on: node a's lease taken
  // over (its entry deleted and another node's made), a stale read showing its own entry does not save it.
  const own = await connection.lease.get('leader');
  await connection.lease.delete('leader');
  const c = new LeaderLease(connection.lease, 'c');
  assert.ok(await c.tryAcquire());
  bucket.answerWith(own);
  assert.equal(await a.renew(), false, 'a renewal over an entry that is no longer its own fails');
  assert.equal(a.held, false);
  assert.deepEqual(await entry(), { operation: 'PUT', holder: 'c', revision: 9 }, "node c's entry stands");
});
