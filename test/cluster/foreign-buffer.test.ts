/**
 * A cluster node's buffer holds the stream's events with the leader's time_us and seqs. A buffer
 * written by a single process (or read from another cluster's stream) numbers its own: joined to a
 * cluster, its seqs would collide with the stream's — batches it does not hold taken for ones it
 * does, later ones refused for time_us that do not increase. So a node whose data dir holds events
 * but no position in this stream refuses to start, saying why; a node on an empty data dir saves
 * its position before it applies anything, so a kill in its first second cannot make its own
 * buffer look foreign.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster, type ClusterConnection } from '../../src/cluster/nats.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

const DID = 'did:plc:foreignforeignforeignfore';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'foreign', nodeId: 'a' };
const logger = pino({ level: 'silent' });

test('a node refuses a buffer that was not read from its cluster stream, and saves its position before applying anything', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const cluster: ClusterConnection = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  defer(() => cluster.nc.close());
  const node = async (events: number) => {
    const dir = tempDir('contrail-foreign-');
    defer(() => dir.remove());
    const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
    defer(() => store.close());
    const timeUs = 1_700_000_000_000_000;
    const entries = Array.from({ length: events }, (_, i) => ({ timeUs: timeUs + i, seq: i + 1, did: DID, kind: 'identity' as const, collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${timeUs + i},"kind":"identity"}`) }));
    if (events > 0) await store.commitAssigned({ entries, revs: new Map() });
    const follower = new StreamFollower(cluster, store, dir.path, logger);
    defer(() => follower.stop());
    return { dir: dir.path, follower };
  };

  const single = await node(3);
  await assert.rejects(single.follower.start(), /holds events that were not read from this cluster's stream "[^"]+" \(no cluster-position\.json: a single process's buffer\).*empty --data-dir/);

  const otherCluster = await node(3);
  writeFileSync(join(otherCluster.dir, 'cluster-position.json'), JSON.stringify({ stream: 'elsewhere-events', seq: 3 }));
  await assert.rejects(otherCluster.follower.start(), /a buffer of the stream "elsewhere-events"/);

  const fresh = await node(0);
  await fresh.follower.start();
  assert.ok(existsSync(join(fresh.dir, 'cluster-position.json')), 'an empty buffer joins, its position saved at once');
});
