/**
 * Batches bigger than NATS's max_payload, against real nats-server with max_payload 64KB: a
 * catch-up batch goes out as several stream messages and is applied whole on every node, and a
 * leader killed with only part of a batch in the stream loses and repeats nothing — the next
 * leader resumes the relay from the cursor before that batch, and every node drops its parts.
 *
 * Deterministically: the backlog is one big commit (150 posts of incompressible text, several
 * hundred KB of events, which are always one batch), and the stream is given room (a JetStream
 * limit, discard new) for the new leader's marker and one message more, so that batch gets
 * exactly one part in; its leader is killed there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { ContrailCluster, type ClusterMember } from '../support/contrail-cluster.ts';
import { commitFrame, tidFor } from '../support/frames.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import type { StreamRecord } from '../../src/cluster/stream-record.ts';

const STREAM = 'contrail-events';

test('batches over max_payload are split, applied whole, and a leader killed mid-batch loses and repeats nothing', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  const cluster = await ContrailCluster.start({ natsServers: 3, maxPayload: '64KB', nodeIds: ['a', 'b'], leaseMs: 2_000 });
  t.after(() => cluster.stop());
  const jsm = await jetstreamManager(cluster.observer);
  const limitMessages = async (max: number | undefined) => {
    const { config } = await jsm.streams.info(STREAM);
    await jsm.streams.update(STREAM, { ...config, max_msgs: max ?? -1, discard: max === undefined ? DiscardPolicy.Old : DiscardPolicy.New });
  };
  const kill = async (member: ClusterMember) => {
    member.process.child.kill('SIGKILL');
    await member.process.exit;
  };

  cluster.feed.push(300);
  await cluster.assertConsistent();

  // A backlog no node has read yet: one commit too big for one message, after the synthetic stream's last frame.
  const cutOff = await cluster.leader();
  const next = cluster.members.find((member) => member !== cutOff)!;
  await Promise.all(cluster.members.map(kill));
  const seq = cluster.feed.lastSeq + 1;
  const ops = Array.from({ length: 150 }, (_, i) => ({
    action: 'create' as const,
    path: `app.bsky.feed.post/${tidFor(i)}`,
    record: { $type: 'app.bsky.feed.post', createdAt: new Date().toISOString(), text: randomBytes(1_500).toString('base64') },
  }));
  cluster.relay.push({ seq, bytes: commitFrame({ seq, repo: 'did:plc:bigcommitbigcommitbigcom', rev: tidFor(seq), ops }) });
  cluster.feed.lastSeq = seq;
  const { state } = await jsm.streams.info(STREAM);
  await limitMessages(state.messages + 2);

  const stalled = await cluster.restart(cutOff);
  await stalled.process.waitForLog('this term ends so that a new leader marker closes the cut-off batch', 60_000);
  const cutRecords = await cluster.streamRecords();
  assert.deepEqual(
    cutRecords.slice(-2).map(describe),
    [`leader ${cutOff.id}`, `part ${cutOff.id}`],
    'the stream ends with the leader marker and the first part of its first batch',
  );
  await kill(stalled);
  await limitMessages(undefined);

  const taker = await cluster.restart(next);
  await taker.process.waitForLog('dropped a batch cut off by a change of leader', 60_000);
  await cluster.restart(stalled);
  await cluster.assertConsistent();

  const records = (await cluster.streamRecords()).map(describe);
  const cut = records.lastIndexOf(`part ${cutOff.id}`);
  assert.equal(records[cut + 1], `leader ${next.id}`, "the cut-off part is followed by the next leader's marker");
  const whole = records.slice(cut + 1).join(' ');
  assert.match(whole, new RegExp(`part ${next.id} (part ${next.id} )*batch ${next.id}`), 'the next leader appended a batch in several parts');
});

function describe(record: StreamRecord): string {
  if (record.type === 'leader') return `leader ${record.node}`;
  return `${record.more ? 'part' : 'batch'} ${record.node}`;
}
