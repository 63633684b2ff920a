/**
 * Without --fsync a machine crash may tear the buffer, so the next start sets data.mdb aside and
 * begins an empty one (store/run-marker.ts). A cluster node's saved stream position
 * (cluster-position.json, beside it in the data dir) still names the stream seq the lost buffer
 * held: resumed from there, the node would serve a buffer without any event before the crash,
 * though the stream still holds them and every other node serves them. The new buffer must be
 * filled from the stream again.
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
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { within } from '../support/poll.ts';
import { batchAfter, readAll, texts } from '../support/store-reads.ts';

const RELAY = 'ws://relay.invalid';
const DID = 'did:plc:setasidesetasidesetasides';
const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'setaside', nodeId: 'a' };
const MARKER = 'contrail-run.json';

test('a cluster node whose buffer a machine crash set aside reads the stream again from its start', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-set-aside-');
  defer(() => dir.remove());
  const logger = pino({ level: 'silent' });
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, logger);
  defer(() => cluster.nc.close());
  const open = () => new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });

  // The node follows the stream: a marker and three batches, all in its buffer.
  const lost = open();
  const follower = new StreamFollower(cluster, lost, dir.path, logger);
  await follower.start();
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await follower.waitApplied(await writer.fence());
  let lastSeq = 0;
  for (let i = 1; i <= 3; i++) {
    lastSeq = await writer.append(batchAfter(lost, DID, RELAY, i));
    assert.equal(await within(5_000, follower.waitApplied(lastSeq)), undefined, `batch ${i} applied`);
  }
  const held = texts(readAll(lost));
  assert.equal(held.length, 3);
  // The machine crashes: the run's marker stays, from an earlier boot (the position file too).
  const marker = JSON.parse(readFileSync(join(dir.path, MARKER), 'utf8'));
  await follower.stop();
  await lost.close();
  writeFileSync(join(dir.path, MARKER), JSON.stringify({ ...marker, bootId: 'an-earlier-boot' }));

  const store = open();
  defer(() => store.close());
  assert.ok(store.previousRun.setAside, 'the buffer was set aside');
  assert.equal(store.lastTimeUs, 0, 'the new buffer is empty');
  const resumed = new StreamFollower(cluster, store, dir.path, logger);
  defer(() => resumed.stop());
  await resumed.start();
  assert.equal(await within(10_000, resumed.waitApplied(lastSeq)), undefined, 'the node follows the stream to its end');
  assert.deepEqual(texts(readAll(store)), held, "the new buffer holds the stream's events from before the crash");
});
