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
 * Who notices the new stream first is a race: the term's check after its marker (it then begins
 * the term again at its next lease check), or the follower's own loop (its stuck-consumer check
 * every few seconds, or its consumer ending with the stream removed; the marker is then waited for
 * in the new stream at once). The first test lets it run and asserts what holds either way: the
 * leader's buffer holds every event of the term, the same as another node's. The second holds the
 * follower's loop still (paused, as a term does) from the removal until the term's check, so the
 * check is first every time: the lease stays held, and the next lease check begins the term at the
 * marker in the new stream (the writer keeps it: still the stream's last message), once the buffer
 * read the new stream up to it.
 *
 * Real nats-server, followers, buffers, writer and Leadership; only the moment the stream is made
 * again is the test's: the writer's fence removes it and makes it again (as a node does that
 * meets it gone) before it appends the marker, once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pino, { type Logger } from 'pino';
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
import { readAll } from '../support/store-reads.ts';
import { capturingLogger, type LogLine } from '../support/upstream-harness.ts';

const RELAY = 'ws://relay.invalid';
const LEASE_MS = 3_000;
const EARLIER_DID = 'did:plc:earlierearlierearlierear';
const INGESTED_DID = 'did:plc:ingestedingestedingestedi';

function identityBatch(did: string, cursorSeq: number): Batch {
  return {
    entries: [{ timeUs: 1_700_000_000_000_000 + cursorSeq, seq: 0, did, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${did}","kind":"identity"}`) }],
    revs: new Map(),
    cursor: { url: RELAY, seq: cursorSeq },
  };
}

/**
 * A follower whose own loop the test can hold still until the term's check notices a stream made
 * again: paused, its consumer is closed, so its loop waits for resume() and its stuck-consumer
 * check ends at its next wake; neither looks at the stream meanwhile.
 */
class FollowerHeldUntilTermCheck extends StreamFollower {
  #held = false;

  hold(): void {
    this.#held = true;
    this.pause();
  }

  override async checkStream(): Promise<boolean> {
    const madeAgain = await super.checkStream();
    if (this.#held && madeAgain) {
      this.#held = false;
      this.resume();
    }
    return madeAgain;
  }
}

/** The buffer's events as seq and DID, to compare. */
const events = (store: EventStore) => readAll(store).map((entry) => `${entry.seq} ${entry.did}`);

/** Node a (which leads) and node b (which follows), the stream made again just before node a's first marker; resolves once both buffers hold the term's batch. */
async function streamMadeAgainBeforeMarker(t: TestContext, options: { holdFollower: boolean }) {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const clusterOptions = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: LEASE_MS, name: 'again' };
  const joinNode = async (nodeId: string, logger: Logger) => {
    const dir = tempDir(`contrail-made-again-before-marker-${nodeId}-`);
    defer(() => dir.remove());
    const connection = await openCluster({ ...clusterOptions, nodeId }, logger);
    defer(() => connection.nc.close());
    const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
    defer(() => store.close());
    const follower = new FollowerHeldUntilTermCheck(connection, store, dir.path, logger);
    await follower.start();
    defer(() => follower.stop());
    return { connection, store, follower };
  };
  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const a = await joinNode('a', logger);
  const b = await joinNode('b', pino({ level: 'silent' }));

  // The stream before holds a marker and a batch, and both buffers hold them: their position is 2.
  const { nc, js, jsm, streamName, subject } = a.connection;
  const writerOf = (nodeId: string) => [nc, js, jsm, streamName, subject, nodeId, (first: number, last: number, batch: Batch) => a.follower.ownAppend(first, last, batch)] as const;
  const before = new StreamWriter(...writerOf('earlier'));
  await a.follower.waitApplied(await before.fence());
  const earlier = identityBatch(EARLIER_DID, 1);
  earlier.entries[0]!.seq = 1;
  const earlierSeq = await before.append(earlier);
  await Promise.all([a.follower.waitApplied(earlierSeq), b.follower.waitApplied(earlierSeq)]);
  assert.deepEqual([a.follower.appliedSeq, a.store.lastSeq, b.follower.appliedSeq, b.store.lastSeq], [2, 1, 2, 1], 'both buffers hold the stream before through seq 2');

  // The new term's writer: the stream is removed and made again just before its first marker.
  let madeAgain = false;
  class StreamMadeAgainBeforeMarker extends StreamWriter {
    override async fence(): Promise<number> {
      if (!madeAgain) {
        madeAgain = true;
        if (options.holdFollower) a.follower.hold();
        await jsm.streams.delete(streamName);
        assert.ok(await a.connection.restoreMissing(), 'the stream was made again');
      }
      return super.fence();
    }
  }
  const lease = new LeaderLease(a.connection.lease, 'a');
  const leadership = new Leadership({
    lease,
    writer: new StreamMadeAgainBeforeMarker(...writerOf('a')),
    follower: a.follower,
    store: a.store,
    leaseMs: LEASE_MS,
    logger,
    // The term's ingest reads one batch.
    startIngest: (commit) => {
      setImmediate(() => void commit(identityBatch(INGESTED_DID, 2)).catch(() => {}));
      return { connected: true, problem: undefined, notIngesting: undefined, stop: async () => true, abandon() {} };
    },
    restoreMissing: () => a.connection.restoreMissing(),
    restoreLeaseExpiry: (stoodMs) => a.connection.restoreLeaseExpiry(stoodMs),
  });
  leadership.start();
  defer(() => leadership.stop(0));

  // Node b reads the new stream from its start: the term's batch is in it once b's buffer holds it.
  await waitUntil(() => b.store.lastSeq === 2, `node b's buffer to hold the batch the leader appended to the new stream (it holds seq ${b.store.lastSeq})`, 20_000);
  await waitUntil(() => a.store.lastSeq === 2, `the leader's buffer to hold the batch it appended (it holds seq ${a.store.lastSeq}, applied ${a.follower.appliedSeq})`, 10_000);
  assert.equal(madeAgain, true);
  assert.deepEqual(events(a.store), [`1 ${EARLIER_DID}`, `2 ${INGESTED_DID}`], "the leader's buffer holds the events before and the term's");
  assert.deepEqual(events(b.store), events(a.store), "node b's buffer holds the same events as the leader's");
  assert.equal(leadership.leading, true);
  assert.ok(lines.some((line) => /WAS MADE AGAIN/.test(line.msg)), 'the leader says it reads the new stream from its start');
  return { lines, lease, connection: a.connection };
}

test("a stream made again between a new term's check and its marker: whoever notices it first, the leader's own batches reach its buffer, as another node's", { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  await streamMadeAgainBeforeMarker(t, { holdFollower: false });
});

test("a stream made again between a new term's check and its marker, noticed by the term's check after the marker: the lease stays held and the next lease check begins the term at its marker in the new stream", { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { lines, lease, connection } = await streamMadeAgainBeforeMarker(t, { holdFollower: true });
  const said = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line.msg));
  const again = said(/made again while this node appended its term's marker/);
  assert.ok(again >= 0, 'the term says it begins again');
  assert.equal(lines[again]!.markerSeq, 1, "its marker was the new stream's first message");
  const leaders = lines.filter((line) => line.msg === 'this node is the ingest leader');
  assert.deepEqual(leaders.map((line) => line.markerSeq), [1], 'the term began once, at the marker in the new stream');
  assert.ok(lines.indexOf(leaders[0]!) > again);
  assert.equal(said(/lost the ingest lease|stops leading|gives the ingest lease up/), -1, 'the lease was held throughout');
  assert.equal(await lease.holder(), 'a');
  const { state } = await connection.jsm.streams.info(connection.streamName);
  assert.equal(state.last_seq, 2, 'the new stream holds the marker and the batch');
});
