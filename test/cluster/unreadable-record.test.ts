/**
 * A record in the cluster's stream that a node's follower cannot decode — the layout of a newer
 * contrail leading a cluster upgraded out of order, or bytes another application published on
 * the subject — may hold events, and the node cannot know which: applying what follows without
 * them, it would serve a buffer that differs from the leader's under the same seqs. The follower
 * tried it again every second for good, a warning each time, and the node served on, its buffer
 * standing still at the record. Found by review (session 16). It must stop for good instead, as on
 * a foreign buffer: `contrail serve` logs a fatal line naming the record's seq, why it cannot be
 * read and what to do, says it on stderr and exits 1, having applied everything before it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import type { Batch } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

const DID = 'did:plc:unreadableunreadableunrea';
/** The stream a node started with --nats-replicas 1 and the default --nats-name and retention opens. */
const OPTIONS = { replicas: 1, retentionMs: 6 * 3_600_000, leaseMs: 2_000, name: 'contrail', nodeId: 'writer' };

const batchOf = (seq: number): Batch => {
  const timeUs = 1_800_000_000_000_000 + seq;
  return {
    entries: [{ timeUs, seq, did: DID, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${timeUs},"kind":"identity"}`) }],
    revs: new Map(),
    cursor: { url: 'ws://relay.invalid', seq },
  };
};

test('a node whose follower meets a stream record it cannot decode stops, naming the record and why, and exits 1', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const cluster = await openCluster({ ...OPTIONS, servers: nats.urls }, pino({ level: 'silent' }));
  defer(() => cluster.nc.close());
  // A leader's marker and two batches (stream seqs 1-3), then a record no contrail wrote (seq 4).
  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, OPTIONS.nodeId, () => {});
  await writer.fence();
  for (let seq = 1; seq <= 2; seq++) await writer.append(batchOf(seq));
  const unreadable = await cluster.js.publish(cluster.subject, Buffer.from('X: not a contrail stream record'));
  assert.equal(unreadable.seq, 4);

  const dir = tempDir('contrail-unreadable-record-');
  defer(() => dir.remove());
  const contrail = ContrailProcess.serve([
    '--upstream', 'ws://127.0.0.1:1', '--data-dir', dir.path, '--nats', nats.urls.join(','),
    '--nats-replicas', '1', '--nats-lease', `${OPTIONS.leaseMs}ms`, '--node-id', 'a',
  ]);
  defer(() => contrail.stop());
  const outcome = await Promise.race([
    contrail.exit.then(() => 'exited' as const),
    contrail.waitForLog('reading the cluster event stream failed', 120_000).then(
      () => 'tried again' as const,
      () => 'exited' as const,
    ),
  ]);
  assert.equal(outcome, 'exited', `the follower stops at the record instead of trying it again:\n${contrail.tail()}`);
  const status = await contrail.exit;
  assert.equal(status.code, 1, `contrail exits 1:\n${contrail.tail()}`);
  const fatal = contrail.logs.find((record) => record.level === 60);
  assert.ok(fatal, `a fatal log line:\n${contrail.tail()}`);
  assert.equal(fatal.msg, 'contrail cannot go on', 'stopped while running, not refused at start');
  const said = String(fatal.err);
  assert.match(said, /seq 4 of the cluster stream contrail-events/, 'naming the record');
  assert.match(said, /unknown stream record type 0x58/, 'and why it cannot be read');
  assert.match(said, /newer contrail/, 'and what may have written it');
  assert.match(said, /nats stream rmm contrail-events 4/, 'and how to remove it if it is not contrail\'s');
  assert.match(contrail.stderr.join('\n'), /seq 4 of the cluster stream contrail-events/, 'on stderr too');
  const stopped = contrail.logs.find((record) => record.level === 50 && /seq 4 of the cluster stream/.test(String(record.msg)));
  assert.equal(stopped?.appliedSeq, 3, 'having applied the batches before it');
});
