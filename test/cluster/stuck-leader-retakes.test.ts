/**
 * A node whose buffer does not move toward its term's marker for a whole lease gives the lease up
 * for a node that can lead (lease-kept-while-catching-up.test.ts). With no other node, it takes the
 * lease back at its next check and begins again. Each of those attempts appended one more marker
 * to the stream and left its wait for the buffer behind in the follower (a promise that never
 * settles, and what it holds): every ~1.3 leases, for as long as the buffer stood still, hours on
 * a full disk. An attempt that gives up must leave nothing behind, and a node taking the lease back
 * while the stream still ends at its own marker has nothing to fence again.
 *
 * Real parts, wired as node.ts wires them: nats-server, the lease, the writer, the follower on a
 * real buffer. The buffer stands still because the follower's consumer is closed (pause(), as a
 * leader's is), so it never reads the marker.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { leadershipWithIdleIngest } from '../support/cluster-leadership.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing, readStreamRecords } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';
import { capturingLogger } from '../support/upstream-harness.ts';

const LEASE_MS = 1_000;
const ATTEMPTS = 3;
const GAVE_UP = "this node's buffer did not move toward its term's marker";

test('a lone node whose buffer stands still retakes the lease without another marker each time, and leaves no wait behind per attempt', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-stuck-leader-');
  defer(() => dir.remove());
  const logs: Array<{ msg: string }> = [];
  const logger = capturingLogger(logs, 'info');
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'stuck', nodeId: 'a' }, logger);
  defer(() => connection.nc.close());
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const follower = new StreamFollower(connection, store, dir.path, logger);
  follower.pause();
  await follower.start();
  defer(() => follower.stop());

  // The waits the terms leave with the follower: each promise waitApplied gave, until it settles.
  let unsettledWaits = 0;
  const waitApplied = follower.waitApplied.bind(follower);
  follower.waitApplied = (...args: Parameters<StreamFollower['waitApplied']>) => {
    const wait = waitApplied(...args);
    unsettledWaits++;
    void wait.then(
      () => unsettledWaits--,
      () => unsettledWaits--,
    );
    return wait;
  };

  const { leadership, ingest } = leadershipWithIdleIngest({ connection, lease: new LeaderLease(connection.lease, 'a'), follower, store, leaseMs: LEASE_MS, logger });
  leadership.start();
  defer(() => leadership.stop(0));

  const attempts = () => logs.filter((record) => record.msg.startsWith(GAVE_UP)).length;
  await waitUntil(() => attempts() >= ATTEMPTS, `the node to give the lease up ${ATTEMPTS} times`, 30 * LEASE_MS);
  await leadership.stop(0);
  assert.equal(ingest.started, false, 'a buffer that stands still begins no term');

  const markers = (await readStreamRecords(connection.nc, connection.streamName)).filter((record) => record.type === 'leader');
  assert.equal(markers.length, 1, `one marker for ${attempts()} attempts: nothing was appended after the first, so it still fences the stream`);
  assert.equal(unsettledWaits, 0, `no wait for the buffer is left behind by the ${attempts()} attempts that gave up`);
});
