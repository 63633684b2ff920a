/**
 * A node's Leadership wired as node.ts wires it — its lease, a StreamWriter on the connection, the
 * follower and buffer a test gives it — around an ingest that reads nothing (idle-ingest.ts): a
 * term that begins only says so (`ingest.started`). For tests of how terms begin and end.
 */
import { Leadership } from '../../src/cluster/leadership.ts';
import type { LeaderLease } from '../../src/cluster/lease.ts';
import type { ClusterConnection } from '../../src/cluster/nats.ts';
import type { StreamFollower } from '../../src/cluster/follower.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import type { EventStore } from '../../src/store/index.ts';
import type { Logger } from 'pino';
import { idleIngest } from './idle-ingest.ts';

export function leadershipWithIdleIngest(options: {
  connection: ClusterConnection;
  lease: LeaderLease;
  follower: StreamFollower;
  store: EventStore;
  leaseMs: number;
  logger: Logger;
}): { leadership: Leadership; ingest: { started: boolean } } {
  const { connection, lease, follower } = options;
  const ingest = { started: false };
  const writer = new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, lease.nodeId, (first, last, batch) => follower.ownAppend(first, last, batch));
  const leadership = new Leadership({
    lease,
    writer,
    follower,
    store: options.store,
    leaseMs: options.leaseMs,
    logger: options.logger,
    startIngest: () => {
      ingest.started = true;
      return idleIngest();
    },
    restoreMissing: () => connection.restoreMissing(),
    restoreLeaseExpiry: (stoodMs) => connection.restoreLeaseExpiry(stoodMs),
  });
  return { leadership, ingest };
}
