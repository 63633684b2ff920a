/**
 * A node away for longer than the cluster stream keeps batches (--nats-retention): it must say
 * so, and continue from the oldest batch the stream still has, serving everything after it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { cleanup } from '../support/cleanup.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { FakeRelay } from '../support/fake-relay.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { assertSameOps, eventOpId, upstreamOpIds } from '../support/op-ids.ts';
import { stats, Subscription, waitUntil } from '../support/subscribe-client.ts';
import { SyntheticFirehose } from '../support/synthetic.ts';

const RETENTION_MS = 10_000;

test('a node away longer than the stream retention says so and serves what the stream still had', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  // Nodes stop before the data dirs go and NATS stops (see cleanup.ts).
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const firehose = new SyntheticFirehose({ seed: 11, accounts: 100 });
  const pushed: Array<{ seq: number; bytes: Uint8Array }> = [];
  const push = (count: number) => {
    for (const frame of firehose.frames(count)) {
      relay.push({ seq: frame.seq, bytes: frame.bytes });
      pushed.push(frame);
    }
  };
  const dirs = ['a', 'b'].map((id) => tempDir(`contrail-behind-${id}-`));
  defer(() => dirs.forEach((dir) => dir.remove()));
  const launch = (i: number) =>
    ContrailProcess.serve([
      '--upstream', relay.url, '--data-dir', dirs[i]!.path, '--nats', nats.urls[0]!, '--nats-replicas', '1',
      '--nats-retention', `${RETENTION_MS}ms`, '--nats-lease', '1s', '--nats-name', 'behind', '--node-id', `node-${i}`,
    ]);
  const leader = launch(0);
  defer(() => leader.stop());
  await leader.waitForLog('this node is the ingest leader');
  let away = launch(1);
  await away.waitServing();
  await relay.waitForConnections(1);
  const settled = async (node: ContrailProcess) =>
    waitUntil(async () => ((await stats(node.port)).upstreamCursor?.seq ?? 0) >= pushed.at(-1)!.seq, `upstream seq ${pushed.at(-1)!.seq}\n${node.tail()}`, 30_000);

  push(100);
  await settled(away);
  away.child.kill('SIGKILL');
  await away.exit;
  push(100); // the batches the away node will never see: they expire from the stream before it returns
  await settled(leader);
  const observer = await connect({ servers: nats.urls[0]! });
  defer(() => observer.close());
  const jsm = await jetstreamManager(observer);
  const streamState = async () => (await jsm.streams.info('behind-events')).state;
  const missedThrough = (await streamState()).last_seq;
  await waitUntil(async () => (await streamState()).first_seq > missedThrough, `the stream's retention to drop its batches through seq ${missedThrough}`, RETENTION_MS + 30_000);
  push(100);
  await settled(leader);

  away = launch(1);
  defer(() => away.stop());
  await away.waitForLog('THIS NODE FELL BEHIND THE STREAM RETENTION');
  await settled(away);
  const { eventCount } = await stats(away.port);
  const subscription = await Subscription.open(away.port, 'cursor=1');
  await subscription.waitForCount(eventCount, `${eventCount} events`);
  await subscription.close();
  const kept = [...pushed.slice(0, 100), ...pushed.slice(200)];
  assertSameOps(
    subscription.events.map(eventOpId),
    upstreamOpIds(kept).map((op) => op.id),
  );
  assert.ok(subscription.events.length > 0);
});
