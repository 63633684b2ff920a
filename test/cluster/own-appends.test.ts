/**
 * A leader's own batches reach its buffer on the stream's acknowledgement, with its stream
 * consumer closed for the term (follower.ts ownAppend, pause): against a real nats-server, every
 * acknowledged batch must count as applied — one the buffer takes, and one it holds already (no
 * events, an upstream cursor that did not move: frames that produced no event while --verify
 * holds the cursor below a repo whose key is being resolved) — or the term's next commit, which
 * waits for the batch before it, waits forever.
 */
import assert from 'node:assert/strict';
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
import { within } from '../support/poll.ts';

const RELAY = 'ws://relay.invalid';

test('with the leader’s consumer closed, each acknowledged own batch counts as applied: one the buffer takes, and one without events it holds already', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  // The follower stops before its connection closes and NATS stops (see cleanup.ts).
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-own-appends-');
  const logger = pino({ level: 'silent' });
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'own-appends', nodeId: 'a' }, logger);
  defer(() => connection.nc.close());
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  const follower = new StreamFollower(connection, store, dir.path, logger);
  await follower.start();
  defer(async () => {
    await follower.stop();
    await store.close();
    dir.remove();
  });
  const writer = new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, 'a', (first, last, batch) => follower.ownAppend(first, last, batch));
  await follower.waitApplied(await writer.fence());
  follower.pause();

  const withEvent: Batch = {
    entries: [{ timeUs: 1_700_000_000_000_000, seq: store.lastSeq + 1, did: 'did:plc:ownappendsownappendsownap', kind: 'identity', collection: null, json: Buffer.from('{"kind":"identity"}') }],
    revs: new Map(),
    cursor: { url: RELAY, seq: 5 },
  };
  const first = await writer.append(withEvent);
  assert.equal(await within(5_000, follower.waitApplied(first)), undefined, 'the batch with an event is applied');
  assert.equal(store.lastSeq, withEvent.entries[0]!.seq);

  const withoutEvents: Batch = { entries: [], revs: new Map(), cursor: { url: RELAY, seq: 5 } };
  const second = await writer.append(withoutEvents);
  assert.equal(await within(5_000, follower.waitApplied(second)), undefined, `the batch the buffer holds already is applied too (applied: ${follower.appliedSeq})`);
  assert.equal(follower.appliedSeq, second);
});
