/**
 * A lease renewal is a compare-and-set on the lease entry's revision. A lease bucket removed while
 * the cluster runs is made again by the first node whose lease check meets it gone, and numbers its
 * entries from 1 again: a node that makes it and takes the lease writes revision 1, which is the
 * revision the old leader holds if it had not renewed since it took the lease in the old bucket (or
 * any revision the new holder's renewals reach). The old leader's renewal then succeeded over the
 * new holder's entry, and two nodes led at once (their appends stayed fenced by the stream, but the
 * new holder's own renewal failed next, and the old leader led on without a break). Seen in session
 * 20 as lease-bucket-removed.test.ts waiting in vain for the old leader's term to end. A renewal
 * must succeed only over this node's own entry: one that finds another node's steps down.
 *
 * Both nodes are a real Leadership on real NATS, a real follower and buffer each; only the moment
 * each renewal reaches NATS is the test's (LeaseRenewingOnCue), so the two nodes' writes come in
 * the order the case needs, whatever the machine's load: a takes the lease at revision 1, the
 * bucket is removed, b makes it again and takes the lease at revision 1, then a renews.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster, type ClusterConnection } from '../../src/cluster/nats.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { leadershipWithIdleIngest } from '../support/cluster-leadership.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';
import { capturingLogger, type LogLine } from '../support/upstream-harness.ts';

/**
 * Long enough that no renewal is due while a term begins (every lease / 3: the catch-up's renewals
 * would wait for a cue that has not come), and that b's entry outlives the test's steps (its
 * expiry would make a's renewal fail whatever the fix).
 */
const LEASE_MS = 30_000;

/** A node's lease, the product's own, whose renewals each wait until the test lets them reach NATS. */
class LeaseRenewingOnCue extends LeaderLease {
  #cues: Array<() => void> = [];
  #free = false;
  /** What each renewal let through answered, in order. */
  readonly renewals: boolean[] = [];

  get renewalsWaiting(): number {
    return this.#cues.length;
  }

  override async renew(): Promise<boolean> {
    if (!this.#free) await new Promise<void>((resolve) => this.#cues.push(resolve));
    const renewed = await super.renew();
    this.renewals.push(renewed);
    return renewed;
  }

  /** Lets the oldest waiting renewal through. */
  cue(): void {
    this.#cues.shift()?.();
  }

  /** Lets every renewal through from now on (at the test's end, so that the nodes stop). */
  free(): void {
    this.#free = true;
    for (const cue of this.#cues.splice(0)) cue();
  }
}

/** Who holds the lease, and at which revision, read from NATS. */
async function entry(connection: ClusterConnection): Promise<{ holder: string; revision: number } | undefined> {
  const read = await connection.lease.get('leader');
  return read?.operation === 'PUT' ? { holder: read.string(), revision: read.revision } : undefined;
}

test("a leader whose lease revision from a removed bucket equals the new holder's steps down at its renewal, and only the new holder leads", { skip: natsServerMissing(), timeout: 90_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'collide' };

  /** A node joined (its follower running), its Leadership not started yet. */
  const joinNode = async (nodeId: string) => {
    const dir = tempDir(`contrail-lease-collision-${nodeId}-`);
    defer(() => dir.remove());
    const lines: LogLine[] = [];
    const logger = capturingLogger(lines, 'info');
    const connection = await openCluster({ ...options, nodeId }, logger);
    defer(() => connection.nc.close());
    const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
    defer(() => store.close());
    const follower = new StreamFollower(connection, store, dir.path, logger);
    await follower.start();
    defer(() => follower.stop());
    const lease = new LeaseRenewingOnCue(connection.lease, nodeId);
    const { leadership } = leadershipWithIdleIngest({ connection, lease, follower, store, leaseMs: LEASE_MS, logger });
    return { connection, lease, leadership, lines, said: (pattern: RegExp) => lines.some((line) => pattern.test(line.msg)) };
  };
  const a = await joinNode('a');
  const b = await joinNode('b');
  // Node a takes the lease at the bucket's first revision and leads; its renewals wait for their cue.
  a.leadership.start();
  defer(() => {
    a.lease.free();
    return a.leadership.stop(0);
  });
  await waitUntil(() => a.leadership.leading, 'node a to lead');
  assert.deepEqual(await entry(a.connection), { holder: 'a', revision: 1 }, 'node a holds the lease at revision 1');

  // The bucket is removed; node b's first lease check meets it gone, makes it again and takes the lease in it.
  await a.connection.jsm.streams.delete('KV_collide-leader');
  b.leadership.start();
  defer(() => {
    b.lease.free();
    return b.leadership.stop(0);
  });
  await waitUntil(() => b.leadership.leading, 'node b to lead');
  assert.ok(b.said(/THE LEASE BUCKET collide-leader WAS GONE/), 'node b made the bucket again');
  assert.deepEqual(await entry(b.connection), { holder: 'b', revision: 1 }, "node b holds the lease at revision 1, a's revision from the removed bucket");
  assert.deepEqual([a.lease.renewals, b.lease.renewals], [[], []], 'neither node has renewed yet');

  // Node a renews (its check comes a third of a lease after its term began).
  await waitUntil(() => a.lease.renewalsWaiting === 1, "node a's renewal", LEASE_MS);
  a.lease.cue();
  await waitUntil(() => a.lease.renewals.length === 1, "node a's renewal to be answered");
  assert.deepEqual(a.lease.renewals, [false], "node a's renewal over node b's entry fails");
  await waitUntil(() => !a.leadership.leading, "node a's term to end");
  assert.ok(a.said(/lost the ingest lease/), 'node a says it lost the lease');
  assert.deepEqual(await entry(b.connection), { holder: 'b', revision: 1 }, "node b's entry stands");

  // Node b renews: it still holds the lease, and it alone leads.
  await waitUntil(() => b.lease.renewalsWaiting === 1, "node b's renewal", LEASE_MS);
  b.lease.cue();
  await waitUntil(() => b.lease.renewals.length === 1, "node b's renewal to be answered");
  assert.deepEqual(b.lease.renewals, [true], 'node b renews its lease');
  assert.deepEqual(await entry(b.connection), { holder: 'b', revision: 2 });
  assert.deepEqual([a.leadership.leading, b.leadership.leading], [false, true], 'only node b leads');
});

/**
 * The renewal's read and its compare-and-set are two requests. A renewal whose read found no entry
 * (the bucket made again since this node's last write, or its entry expired) let the compare-and-set
 * decide, and another node taking the lease between the two at this node's revision made it pass
 * over that node's entry. Seen in lease-bucket-removed.test.ts, 3 runs in 10: the old leader held
 * revision 1, the other node made the bucket again and took revision 1 just after the old leader's
 * read, and the old leader led on while the other node lost the lease it had just taken. No entry
 * means this node's lease is gone whatever took its place, so the renewal steps down. The test's
 * only part is when node c takes the lease: right after node a's read is answered, on real NATS.
 */
test("a renewal that reads no lease entry steps down, and another node's take landing before its compare-and-set at its revision stands", { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'between', nodeId: 'a' }, capturingLogger([], 'info'));
  defer(() => connection.nc.close());
  let afterRead: (() => Promise<unknown>) | undefined;
  const bucketTakingTurnsAfterReads = new Proxy(connection.lease, {
    get(bucket, property) {
      if (property === 'get') {
        return async (...args: Parameters<typeof bucket.get>) => {
          const read = await bucket.get(...args);
          const turn = afterRead;
          afterRead = undefined;
          await turn?.();
          return read;
        };
      }
      const value: unknown = Reflect.get(bucket, property);
      return typeof value === 'function' ? value.bind(bucket) : value;
    },
  });
  const a = new LeaderLease(bucketTakingTurnsAfterReads, 'a');
  const c = new LeaderLease(connection.lease, 'c');
  assert.ok(await a.tryAcquire());
  await connection.jsm.streams.delete('KV_between-leader');
  await connection.restoreMissing();

  afterRead = () => c.tryAcquire();
  assert.equal(await a.renew(), false, "node a's renewal, having read no entry, steps down");
  assert.equal(a.held, false);
  assert.deepEqual(await entry(connection), { holder: 'c', revision: 1 }, "node c's lease, taken between node a's read and its compare-and-set, stands");
  assert.equal(await c.renew(), true, 'node c renews');
});
