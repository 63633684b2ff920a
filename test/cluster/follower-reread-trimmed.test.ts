/**
 * Review (session 14): a node that crashed re-reads from its saved position (saved about once a
 * second) the batches it had applied since, and passes them over as already in the buffer. If
 * its own retention removed their events meanwhile — its --retention is its own and may be
 * shorter than --nats-retention, so a node away longer than its retention comes back to an
 * emptied buffer and a stream that still has those batches — the follower's check that a batch
 * passed over is the buffer's event at its last seq finds no event there, takes the buffer for
 * another cluster's, and stops for good: `contrail serve` exits 1, and so at every restart.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore } from '../../src/store/index.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { within } from '../support/poll.ts';
import { batchAfter } from '../support/store-reads.ts';

const RELAY = 'ws://relay.invalid';
const DID = 'did:plc:trimmedtrimmedtrimmedtrim';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'reread-trimmed', nodeId: 'a' };
const logger = pino({ level: 'silent' });

test('a node re-reading batches whose events its own retention removed goes on following, not stopping with the foreign-buffer error', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const nats = await NatsCluster.start(1);
  const dir = tempDir('contrail-reread-trimmed-');
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  let follower: StreamFollower | undefined;
  t.after(async () => {
    await follower?.stop();
    await cluster.nc.close();
    await store.close();
    dir.remove();
    await nats.stop();
  });

  // A marker and five batches (stream seqs 1-6), all applied.
  const first = new StreamFollower(cluster, store, dir.path, logger);
  follower = first;
  await first.start();
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await first.waitApplied(await writer.fence());
  for (let i = 1; i <= 5; i++) await first.waitApplied(await writer.append(batchAfter(store, DID, RELAY, i)));
  await first.stop();
  follower = undefined;

  // A crash leaves the position saved a second before: stream seq 3 (batches 3-5 are re-read).
  const positionPath = join(dir.path, 'cluster-position.json');
  const position = JSON.parse(readFileSync(positionPath, 'utf8')) as { seq: number };
  assert.equal(position.seq, 6);
  writeFileSync(positionPath, JSON.stringify({ ...position, seq: 3 }));
  // The node was away longer than its --retention: every event is older than the bound.
  assert.equal(await store.trimBefore(store.lastTimeUs + 1, 1_000), 5);
  assert.equal(store.lastSeq, 5, 'the buffer remembers its last seq');

  const resumed = new StreamFollower(cluster, store, dir.path, logger);
  follower = resumed;
  await resumed.start();
  const outcome = await within(10_000, Promise.race([resumed.waitApplied(6).then(() => 'applied' as const), resumed.failed]));
  assert.equal(outcome, 'applied', `the re-read batches are passed over and the follower goes on (it stopped: ${outcome instanceof Error ? outcome.message : outcome})`);
  // And what the stream appends next reaches the buffer.
  const next = batchAfter(store, DID, RELAY, 6);
  assert.equal(await within(5_000, resumed.waitApplied(await writer.append(next))), undefined);
  assert.equal(store.lastSeq, next.entries[0]!.seq);
});
