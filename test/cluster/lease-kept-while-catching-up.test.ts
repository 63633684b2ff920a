/**
 * A term begins with a marker, then waits until the node's buffer holds everything before it.
 * That wait is the node's lag: long for a node that takes the lease far behind (the whole cluster
 * restarted, or it is the only one left). The lease was not renewed meanwhile — the lease loop
 * waited for the term to begin — so a catch-up longer than the lease let it expire: the node then
 * lost it at its first renewal, logging `lost the ingest lease to another node` with no other
 * node running, and began again with a second marker. Found by review (a node on its own that
 * caught up 10 s of batches under a 5 s lease). The lease must be renewed while the node catches up,
 * and only then: not while its buffer stands still (its commits fail, its consumer is stuck), nor
 * once the node is stopping, or it holds every other node out of the lease with nobody ingesting.
 *
 * The node's buffer is the one thing stood in for: it moves, and reaches the marker, when the test says.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster, type ClusterConnection } from '../../src/cluster/nats.ts';
import type { StreamFollower } from '../../src/cluster/follower.ts';
import type { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { leadershipWithIdleIngest } from '../support/cluster-leadership.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

const LEASE_MS = 1_000;

/** A node 'a' that takes the lease at once and whose buffer is behind its marker until `caughtUp()`; `moving` says whether it applies batches meanwhile. */
async function catchingUpLeader(t: TestContext, moving: boolean) {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const logger = pino({ level: 'silent' });
  const connection: ClusterConnection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'catchup', nodeId: 'a' }, logger);
  defer(() => connection.nc.close());

  let caughtUp!: () => void;
  const markerApplied = new Promise<void>((resolve) => (caughtUp = resolve));
  // A buffer catching up applies batch after batch; a stuck one stays where it is.
  let appliedSeq = 0;
  const applying = setInterval(() => moving && appliedSeq++, 50);
  defer(() => clearInterval(applying));
  // A follower that never fails (Leadership gives the lease up when one does), of a stream never made again.
  const follower = {
    checkStream: async () => {},
    // As the follower's: a wait given up (its term's catch-up ended) rejects.
    waitApplied: (_seq: number, signal: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        void markerApplied.then(resolve);
        if (signal.aborted) reject(new Error('gave up'));
        signal.addEventListener('abort', () => reject(new Error('gave up')), { once: true });
      }),
    get appliedSeq() {
      return appliedSeq;
    },
    pause() {},
    resume() {},
    failed: new Promise(() => {}),
  } as unknown as StreamFollower;
  const lease = new LeaderLease(connection.lease, 'a');
  const { leadership, ingest } = leadershipWithIdleIngest({ connection, lease, follower, store: { lastSeq: 0 } as EventStore, leaseMs: LEASE_MS, logger });
  leadership.start();
  defer(() => {
    caughtUp(); // a term still waiting for the buffer would hold the stop on the code before the fix
    return leadership.stop(0);
  });
  const holder = async () => (await connection.lease.get('leader'))?.revision;
  let taken: number | undefined;
  await waitUntil(async () => (taken = await holder()) !== undefined, 'the node to take the lease');
  return { connection, lease, leadership, ingest, caughtUp, holder, taken: taken! };
}

test('a new leader renews its lease while its buffer catches up to its marker', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { lease, leadership, ingest, caughtUp, holder, taken } = await catchingUpLeader(t, true);
  // Two renewals while the buffer is still behind the marker: the lease outlives the catch-up.
  await waitUntil(async () => ((await holder()) ?? 0) >= taken + 2, `the lease (taken at revision ${taken}) renewed twice while the node catches up`, 10 * LEASE_MS);
  assert.equal(ingest.started, false, 'ingest waits for the buffer to reach the marker');

  caughtUp();
  await waitUntil(() => ingest.started, 'the term to begin once the buffer holds the marker');
  assert.ok(lease.held, 'the node still holds the lease');
  assert.equal(leadership.leading, true);
});

test('a new leader whose buffer does not move toward its marker lets the lease go to another node', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { connection, ingest } = await catchingUpLeader(t, false);
  // Node b asks as a node's lease loop does: it gets the lease once a no longer renews it.
  const other = new LeaderLease(connection.lease, 'b');
  await waitUntil(() => other.tryAcquire(), 'node b to take the lease from a node whose buffer stands still behind its marker', 20 * LEASE_MS);
  assert.equal(ingest.started, false, 'the stuck node never began ingesting');
});

test('a new leader stopped while its buffer catches up stops without waiting for it, and frees the lease', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { connection, leadership, ingest } = await catchingUpLeader(t, true);
  const stopped = { done: false };
  void leadership.stop(0).then(() => (stopped.done = true));
  await waitUntil(() => stopped.done, 'stop() to return while the buffer is still behind the marker', 20 * LEASE_MS);
  assert.equal(ingest.started, false, 'a stopping node begins no term');
  const other = new LeaderLease(connection.lease, 'b');
  assert.ok(await other.tryAcquire(), 'the stopped node gave the lease up');
});
