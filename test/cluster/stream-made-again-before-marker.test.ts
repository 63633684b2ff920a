/**
 * A term begins by checking whether the stream was made again (the follower then reads the new
 * one from its start), then appending its marker, then waiting until the buffer holds the stream
 * through the marker. A stream removed and made again between that check and the marker's append
 * (one round trip) numbers its messages from 1 again, so the marker's seq is below the buffer's
 * position in the stream before: the wait ended at once, the term began, and the leader's own
 * batches, acknowledged at seqs the buffer took for passed, were never committed to its buffer
 * (its consumer is closed for the term): the leader served without the events it ingested. Left
 * open in sessions 19 and 20 ("a stream can be made again within one marker round trip"). A term
 * must wait for its marker in the stream it was appended to.
 *
 * Real nats-server, follower, buffer, writer and Leadership; only the moment the stream is made
 * again is the test's: the writer's fence removes it and makes it again (as a node does that
 * meets it gone) before it appends the marker, once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { Leadership } from '../../src/cluster/leadership.ts';
import { LeaderLease } from '../../src/cluster/lease.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore, type Batch } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

const RELAY = 'ws://relay.invalid';
const LEASE_MS = 3_000;

function identityBatch(did: string, cursorSeq: number): Batch {
  return {
    entries: [{ timeUs: 1_700_000_000_000_000 + cursorSeq, seq: 0, did, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${did}","kind":"identity"}`) }],
    revs: new Map(),
    cursor: { url: RELAY, seq: cursorSeq },
  };
}

test("a stream made again between a new term's check and its marker: the term waits for its marker in the new stream, and the leader's own batches reach its buffer", { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-made-again-before-marker-');
  defer(() => dir.remove());
  const lines: Array<{ msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const connection = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'again', nodeId: 'a' }, logger);
  defer(() => connection.nc.close());
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const follower = new StreamFollower(connection, store, dir.path, logger);
  await follower.start();
  defer(() => follower.stop());

  // The stream before holds a marker and a batch, and the buffer holds both: its position is 2.
  const before = new StreamWriter(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, 'earlier', (first, last, batch) => follower.ownAppend(first, last, batch));
  await follower.waitApplied(await before.fence());
  const earlier = identityBatch('did:plc:earlierearlierearlierear', 1);
  earlier.entries[0]!.seq = 1;
  await follower.waitApplied(await before.append(earlier));
  assert.deepEqual([follower.appliedSeq, store.lastSeq], [2, 1], 'the buffer holds the stream before through seq 2');

  // The new term's writer: the stream is removed and made again just before its first marker.
  let madeAgain = false;
  class StreamMadeAgainBeforeMarker extends StreamWriter {
    override async fence(): Promise<number> {
      if (!madeAgain) {
        madeAgain = true;
        await connection.jsm.streams.delete(connection.streamName);
        assert.ok(await connection.restoreMissing(), 'the stream was made again');
      }
      return super.fence();
    }
  }
  const writer = new StreamMadeAgainBeforeMarker(connection.nc, connection.js, connection.jsm, connection.streamName, connection.subject, 'a', (first, last, batch) => follower.ownAppend(first, last, batch));
  const ingested = identityBatch('did:plc:ingestedingestedingestedi', 2);
  const leadership = new Leadership({
    lease: new LeaderLease(connection.lease, 'a'),
    writer,
    follower,
    store,
    leaseMs: LEASE_MS,
    logger,
    // The term's ingest reads one batch.
    startIngest: (commit) => {
      setImmediate(() => void commit(ingested).catch(() => {}));
      return { connected: true, problem: undefined, notIngesting: undefined, stop: async () => true, abandon() {} };
    },
    restoreMissing: () => connection.restoreMissing(),
    restoreLeaseExpiry: (stoodMs) => connection.restoreLeaseExpiry(stoodMs),
  });
  leadership.start();
  defer(() => leadership.stop(0));

  await waitUntil(() => leadership.leading, 'the node to lead');
  await waitUntil(async () => (await connection.jsm.streams.info(connection.streamName)).state.last_seq >= 2, 'the ingested batch to be appended to the new stream');
  await waitUntil(() => store.lastSeq === 2, `the leader's buffer to hold the batch it appended (it holds seq ${store.lastSeq}, applied ${follower.appliedSeq})`, 10_000);
  assert.equal(madeAgain, true);
  assert.ok(lines.some((line) => /WAS MADE AGAIN/.test(line.msg)), 'the node says it reads the new stream from its start');
  assert.ok(lines.some((line) => /made again while this node appended its term's marker/.test(line.msg)), 'and that it begins the term again');
});
