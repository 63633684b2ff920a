/**
 * What an operator sees when a cluster node's follower stops for good on a foreign buffer
 * (foreign-buffer-same-name.test.ts shows the follower's side): `contrail serve --nats …`, as a
 * real process, logs the foreign-buffer error as fatal ("contrail cannot go on"), says it on
 * stderr, and exits 1 — so a supervisor sees a failure, not a clean stop, and does not restart
 * it into the same state as if nothing were wrong.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore, type Batch } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

const DID = 'did:plc:exitexitexitexitexitexitex';
/** The stream a node started with --nats-name contrail --nats-replicas 1 and the default retention opens. */
const OPTIONS = { replicas: 1, retentionMs: 6 * 3_600_000, leaseMs: 2_000, name: 'contrail', nodeId: 'a' };
const FOREIGN_BUFFER = /holds events that were not read from this cluster's stream/;

const batchOf = (seq: number, timeUs: number): Batch => ({
  entries: [{ timeUs, seq, did: DID, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${timeUs},"kind":"identity"}`) }],
  revs: new Map(),
  cursor: { url: 'ws://relay.invalid', seq },
});

test('contrail serve exits 1, saying why, when its follower stops on a buffer from another cluster', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, pino({ level: 'silent' }));
  defer(() => cluster.nc.close());
  const dir = tempDir('contrail-foreign-exit-');
  defer(() => dir.remove());
  // This cluster's stream: a leader's marker and three batches, seqs 1-3.
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await writer.fence();
  for (let seq = 1; seq <= 3; seq++) await writer.append(batchOf(seq, 1_800_000_000_000_000 + seq));
  // The data dir a node of another cluster (its stream of the same name) left: its own events under seqs 1-3.
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  for (let seq = 1; seq <= 3; seq++) await store.commitAssigned(batchOf(seq, 1_700_000_000_000_000 + seq));
  await store.close();
  writeFileSync(join(dir.path, 'cluster-position.json'), JSON.stringify({ stream: cluster.streamName, created: '2026-01-01T00:00:00.000000000Z', seq: 4 }));

  const contrail = ContrailProcess.serve([
    '--upstream', 'ws://127.0.0.1:1', '--data-dir', dir.path, '--nats', nats.urls.join(','),
    '--nats-replicas', '1', '--nats-lease', `${OPTIONS.leaseMs}ms`, '--node-id', 'b',
  ]);
  defer(() => contrail.stop());
  const status = await contrail.exit;
  assert.equal(status.code, 1, `contrail exits 1:\n${contrail.tail()}`);
  const fatal = contrail.logs.find((record) => record.level === 60);
  assert.ok(fatal, `a fatal log line:\n${contrail.tail()}`);
  assert.equal(fatal.msg, 'contrail cannot go on', 'stopped while running, not refused at start');
  assert.match(String(fatal.err), FOREIGN_BUFFER);
  assert.match(contrail.stderr.join('\n'), FOREIGN_BUFFER);
});
