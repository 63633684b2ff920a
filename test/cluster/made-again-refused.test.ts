/**
 * A lease check that meets the lease bucket or the event stream gone makes it again
 * (restoreMissing). Its callers (Leadership's lease check, a failed append) swallow what that
 * throws and try again at their next check, so a bucket or stream NATS refuses to make again (a
 * stream of another application's claiming its subjects, an account at its stream limit) left every
 * node failing its lease checks with "stream not found", and nothing said what stopped ingest for
 * good. Each refusal is said, naming what is gone and NATS's reason.
 *
 * On a real nats-server: the bucket's and the stream's subjects are taken by a stream of their own
 * (NATS refuses overlapping subjects), then given back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { capturingLogger, type LogLine } from '../support/upstream-harness.ts';

test('a lease bucket or event stream NATS refuses to make again is said, with its reason, at each try; made once NATS allows it', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const lines: LogLine[] = [];
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 30_000, name: 'refused', nodeId: 'a' }, capturingLogger(lines, 'info'));
  defer(() => connection.nc.close());
  const { jsm } = connection;
  const said = (pattern: RegExp) => lines.filter((line) => pattern.test(line.msg));

  await jsm.streams.delete('KV_refused-leader');
  await jsm.streams.add({ name: 'squatter', subjects: ['$KV.refused-leader.>'] });
  await assert.rejects(connection.restoreMissing(), /subjects overlap/);
  await assert.rejects(connection.restoreMissing(), /subjects overlap/);
  const bucketRefused = said(/COULD NOT MAKE THE LEASE BUCKET refused-leader AGAIN/);
  assert.equal(bucketRefused.length, 2, 'each try says it');
  assert.match(String(bucketRefused[0]!.err), /subjects overlap/, "NATS's reason is given");
  assert.equal(said(/THE LEASE BUCKET refused-leader WAS GONE/).length, 2, 'each try says what it found gone first');
  assert.deepEqual(said(/CLUSTER STREAM/), [], 'the stream, still there, is not named');

  await jsm.streams.delete('squatter');
  await jsm.streams.delete('refused-events');
  await jsm.streams.add({ name: 'squatter', subjects: ['refused.events'] });
  await assert.rejects(connection.restoreMissing(), /subjects overlap/, 'the bucket is made, then the stream is refused');
  assert.equal(said(/THE LEASE BUCKET refused-leader WAS GONE/).length, 3);
  const streamRefused = said(/COULD NOT MAKE THE CLUSTER STREAM refused-events AGAIN/);
  assert.equal(streamRefused.length, 1);
  assert.match(String(streamRefused[0]!.err), /subjects overlap/);

  await jsm.streams.delete('squatter');
  assert.equal(await connection.restoreMissing(), true, 'the stream is made once its subject is free');
  assert.equal(said(/THE CLUSTER STREAM refused-events WAS GONE/).length, 2);
  assert.equal((await jsm.streams.info('refused-events')).config.subjects?.[0], 'refused.events');
});
