/**
 * A node away for longer than the cluster stream keeps batches (--nats-retention): it must say
 * so, and continue from the oldest batch the stream still has, serving everything after it. A
 * stream purged while it was away leaves the same gap, and it must say what happened: not that it
 * fell behind the retention, which an operator would raise for nothing.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
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
const FIRST_SEQ_MOVED_PAST = "THE CLUSTER STREAM'S FIRST SEQ MOVED PAST THIS NODE'S POSITION";

/** A leader and a node that was away (killed once it held the first 100 frames, while 100 more were read), on a stream kept RETENTION_MS. */
async function nodeAway(t: TestContext) {
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
  const launch = (i: number) => {
    const node = ContrailProcess.serve([
      '--upstream', relay.url, '--data-dir', dirs[i]!.path, '--nats', nats.urls[0]!, '--nats-replicas', '1',
      '--nats-retention', `${RETENTION_MS}ms`, '--nats-lease', '1s', '--nats-name', 'behind', '--node-id', `node-${i}`,
    ]);
    defer(() => node.stop());
    return node;
  };
  const leader = launch(0);
  await leader.waitForLog('this node is the ingest leader');
  const away = launch(1);
  await away.waitServing();
  await relay.waitForConnections(1);
  const settled = async (node: ContrailProcess) =>
    waitUntil(async () => ((await stats(node.port)).upstreamCursor?.seq ?? 0) >= pushed.at(-1)!.seq, `upstream seq ${pushed.at(-1)!.seq}\n${node.tail()}`, 30_000);

  push(100);
  await settled(away);
  away.child.kill('SIGKILL');
  await away.exit;
  push(100); // the batches the away node will never see: they are gone from the stream before it returns
  await settled(leader);
  const observer = await connect({ servers: nats.urls[0]! });
  defer(() => observer.close());
  const jsm = await jetstreamManager(observer);
  const streamState = async () => (await jsm.streams.info('behind-events')).state;
  return { push, pushed, settled, leader, jsm, streamState, comeBack: () => launch(1) };
}

/** Every event `node` serves, as op ids: the first 100 frames and those from 200 on, the 100 between gone with the stream's batches. */
async function assertServesAroundTheGap(node: ContrailProcess, pushed: Array<{ seq: number; bytes: Uint8Array }>): Promise<void> {
  const { eventCount } = await stats(node.port);
  const subscription = await Subscription.open(node.port, 'cursor=1');
  await subscription.waitForCount(eventCount, `${eventCount} events`);
  await subscription.close();
  const kept = [...pushed.slice(0, 100), ...pushed.slice(200)];
  assertSameOps(
    subscription.events.map(eventOpId),
    upstreamOpIds(kept).map((op) => op.id),
  );
  assert.ok(subscription.events.length > 0);
}

test('a node away longer than the stream retention says so and serves what the stream still had', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const { push, pushed, settled, leader, streamState, comeBack } = await nodeAway(t);
  const missedThrough = (await streamState()).last_seq;
  await waitUntil(async () => (await streamState()).first_seq > missedThrough, `the stream's retention to drop its batches through seq ${missedThrough}`, RETENTION_MS + 30_000);
  push(100);
  await settled(leader);

  const away = comeBack();
  await away.waitForLog((record) => record.msg.startsWith(FIRST_SEQ_MOVED_PAST) && /retention/.test(record.msg));
  await settled(away);
  await assertServesAroundTheGap(away, pushed);
});

test('a node whose position the stream was purged past while it was away says what happened, not that it fell behind the retention', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const { push, pushed, settled, leader, jsm, comeBack } = await nodeAway(t);
  await jsm.streams.purge('behind-events');
  push(100);
  await settled(leader);

  const away = comeBack();
  const gap = await away.waitForLog((record) => typeof record.missedEvents === 'number', 60_000);
  assert.ok((gap.missedEvents as number) > 0, 'the events read while it was away are missed');
  assert.doesNotMatch(gap.msg, /FELL BEHIND THE STREAM RETENTION/, 'well within the retention, it did not fall behind it');
  assert.match(gap.msg, /purge/, `the line names a purge as a cause: ${gap.msg}`);
  await settled(away);
  await assertServesAroundTheGap(away, pushed);
});
