/**
 * A node refuses a data dir holding another cluster's events (foreign-buffer.test.ts) also when
 * that cluster's stream has this one's name: two clusters on separate NATS deployments both on the
 * default --nats-name. The position file then names this stream with another creation time, which
 * the follower takes for "THE CLUSTER STREAM WAS MADE AGAIN"; it joined, and passed over the
 * stream's batches whose seqs its buffer held (its old cluster's events) as applied, serving them
 * under seqs and time_us that name other events on every other node. A batch passed over must now
 * be the buffer's event at its last seq, same time_us; this one is not, and the follower stops for
 * good with the foreign-buffer error (`contrail serve` exits 1 saying so).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore, type Batch } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

const DID = 'did:plc:samenamesamenamesamenames';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'contrail', nodeId: 'b' };
const logger = pino({ level: 'silent' });

const batchOf = (seq: number, timeUs: number): Batch => ({
  entries: [{ timeUs, seq, did: DID, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${timeUs},"kind":"identity"}`) }],
  revs: new Map(),
  cursor: { url: 'ws://relay.invalid', seq },
});

test('a buffer from another cluster whose stream has the same name is refused, not joined as if the stream were made again', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  defer(() => cluster.nc.close());
  const dir = tempDir('contrail-same-name-');
  defer(() => dir.remove());
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const follower = new StreamFollower(cluster, store, dir.path, logger);
  defer(() => follower.stop());
  // This cluster's stream: a leader's marker and three batches, seqs 1-3.
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await writer.fence();
  const ours = 1_800_000_000_000_000;
  for (let seq = 1; seq <= 3; seq++) await writer.append(batchOf(seq, ours + seq));
  // The data dir another cluster's node left: its own events under seqs 1-3, a position in its stream of the same name.
  for (let seq = 1; seq <= 3; seq++) await store.commitAssigned(batchOf(seq, 1_700_000_000_000_000 + seq));
  writeFileSync(join(dir.path, 'cluster-position.json'), JSON.stringify({ stream: cluster.streamName, created: '2026-01-01T00:00:00.000000000Z', seq: 4 }));

  let refused: Error | undefined;
  await follower.start().catch((err: Error) => (refused = err));
  if (!refused) await follower.waitApplied(4).catch((err: Error) => (refused = err));
  if (refused) {
    assert.match(refused.message, /holds events that were not read from this cluster's stream "[^"]+" \(the stream's seq 1 is time_us \d+, the buffer has time_us \d+ under it\).*empty --data-dir/);
    assert.equal(await follower.failed, refused, 'the follower stopped for good (the node stops with it)');
    return;
  }
  const held = [1, 2, 3].map((seq) => store.atSeq(seq)?.timeUs);
  assert.deepEqual(held, [ours + 1, ours + 2, ours + 3], 'the node joined and holds its old cluster\'s events under this stream\'s seqs 1-3');
});
