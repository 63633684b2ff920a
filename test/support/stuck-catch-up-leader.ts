/**
 * A child process for clock-step tests: a node 'a' on the NATS at argv[2] whose Leadership takes
 * the lease (argv[3] ms) and waits for a buffer that never moves toward its marker (the follower
 * stood in for, as in lease-kept-while-catching-up.test.ts). It logs as pino to stdout, and says
 * `waiting for the marker` when the wait begins. Run under libfaketime (clock-behind.ts) so a
 * test can step its wall clock while it waits. SIGTERM stops it.
 */
import pino from 'pino';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import type { StreamFollower } from '../../src/cluster/follower.ts';
import type { EventStore } from '../../src/store/index.ts';
import { leadershipWithIdleIngest } from './cluster-leadership.ts';

const [natsUrl, leaseText] = process.argv.slice(2);
const leaseMs = Number(leaseText);
const logger = pino({ level: 'info' });
const connection = await openCluster({ servers: [natsUrl!], replicas: 1, retentionMs: 3_600_000, leaseMs, name: 'stepped', nodeId: 'a' }, logger);
const follower = {
  checkStream: async () => {},
  waitApplied: (_seq: number, signal: AbortSignal) =>
    new Promise<void>((_resolve, reject) => {
      logger.info('waiting for the marker');
      signal.addEventListener('abort', () => reject(new Error('gave up')), { once: true });
    }),
  appliedSeq: 0,
  pause() {},
  resume() {},
  failed: new Promise(() => {}),
} as unknown as StreamFollower;
const { leadership } = leadershipWithIdleIngest({ connection, lease: new LeaderLease(connection.lease, 'a'), follower, store: { lastSeq: 0 } as EventStore, leaseMs, logger });
leadership.start();
process.once('SIGTERM', () => {
  void leadership
    .stop(0)
    .then(() => connection.nc.close())
    .finally(() => process.exit(0));
});
