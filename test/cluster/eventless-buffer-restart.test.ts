/**
 * Review (session 18): a node whose saved stream position names a seq but whose buffer holds no
 * event reads the stream again from its start, taking its buffer for one a machine crash set
 * aside (set-aside-buffer.test.ts). A node that only ever applied batches without events (its
 * relay's commits all outside --ingest-collections: each batch carries only the upstream cursor)
 * holds no event either, but its buffer is whole: it holds the cursor those batches brought. It
 * warned at every restart that its buffer may have been set aside after a machine crash, and read
 * the whole stream again. It must resume from its saved position, and say nothing of a crash.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore, type Batch } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { within } from '../support/poll.ts';
import { capturingLogger } from '../support/upstream-harness.ts';

const RELAY = 'ws://relay.invalid';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'eventless', nodeId: 'a' };

/** A batch without events: the relay's frames up to `seq` were read, none of them kept. */
const cursorOnly = (seq: number): Batch => ({ entries: [], revs: new Map(), cursor: { url: RELAY, seq } });

test('a node whose buffer holds only the upstream cursor of batches without events resumes from its saved position at a restart', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-eventless-');
  defer(() => dir.remove());
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, pino({ level: 'silent' }));
  defer(() => cluster.nc.close());
  const open = () => new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });

  const first = open();
  const following = new StreamFollower(cluster, first, dir.path, pino({ level: 'silent' }));
  let firstStopped = false;
  defer(async () => {
    if (firstStopped) return;
    await following.stop();
    await first.close();
  });
  await following.start();
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await following.waitApplied(await writer.fence());
  let lastSeq = 0;
  for (let i = 1; i <= 3; i++) lastSeq = await writer.append(cursorOnly(i * 100));
  assert.equal(await within(5_000, following.waitApplied(lastSeq)), undefined, 'the batches are applied');
  await following.stop();
  const held = { lastSeq: first.lastSeq, cursor: first.upstreamCursor?.seq };
  await first.close();
  firstStopped = true;
  assert.deepEqual(held, { lastSeq: 0, cursor: 300 }, 'the buffer holds no event, and the cursor of the last batch');

  const lines: Array<Record<string, unknown>> = [];
  const logger = capturingLogger(lines, 'warn');
  const store = open();
  defer(() => store.close());
  const follower = new StreamFollower(cluster, store, dir.path, logger);
  defer(() => follower.stop());
  await follower.start();
  assert.equal(follower.appliedSeq, lastSeq, `it resumes from its saved position: ${JSON.stringify(lines)}`);
  assert.deepEqual(lines.filter((line) => /machine crash/.test(String(line.msg))), [], 'and says nothing of a machine crash');
});
