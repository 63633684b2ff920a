/**
 * The Ingester (the single writer) with a real EventStore on LMDB in a temp dir, fed real
 * subscribeRepos frames decoded by the upstream parser: seq watermark, per-DID rev check,
 * upstream switch, FutureCursor, group commit, backpressure, and the commit-failure path.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { EventStore, type Batch } from '../src/store/event-store.ts';
import type { IngesterOptions } from '../src/store/ingest.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../src/upstream/messages.ts';
import { accountFrame, commitFrame, errorFrame, identityFrame, infoFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { ingesterUnderTest } from './support/upstream-harness.ts';

const RELAY = 'wss://relay-one.test/xrpc/com.atproto.sync.subscribeRepos';
const OTHER_RELAY = 'wss://relay-two.test/xrpc/com.atproto.sync.subscribeRepos';

function parse(bytes: Uint8Array): UpstreamMessage {
  return parseMessage(decodeFrame(bytes, 5_000_000));
}

/** A one-op commit; the rkey is unique per seq so every stored event can be traced to its frame. */
function post(seq: number, did: string, rev: number): UpstreamMessage {
  return parse(
    commitFrame({
      seq,
      repo: did,
      rev: tidFor(rev),
      ops: [{ action: 'create', path: `app.bsky.feed.post/${tidFor(seq)}`, record: { $type: 'app.bsky.feed.post', text: `post of seq ${seq}`, createdAt: '2026-01-01T00:00:00.000Z' } }],
    }),
  );
}

function identity(seq: number, did: string): UpstreamMessage {
  return parse(identityFrame({ seq, did, handle: `h${seq}.test`, time: '2026-01-01T00:00:00.000Z' }));
}

/** Which frame each stored event came from: "did/rkey" for commits, "did#kind@seq" otherwise. */
function labels(store: EventStore): string[] {
  const out: string[] = [];
  let position = 0;
  for (;;) {
    const { entries, position: next } = store.readAfter(position, { maxEntries: 1_000 });
    if (next === position) return out;
    position = next;
    for (const entry of entries) {
      const event = JSON.parse(entry.json.toString());
      assert.equal(event.time_us, entry.timeUs);
      if (event.kind === 'commit') out.push(`${event.did}/${event.commit.rkey}`);
      else out.push(`${event.did}#${event.kind}@${event[event.kind].seq}`);
    }
  }
}

const postLabel = (seq: number, did: string) => `${did}/${tidFor(seq)}`;
const identityLabel = (seq: number, did: string) => `${did}#identity@${seq}`;

function did(n: number): string {
  return `did:plc:${String(n).padStart(24, 'a')}`;
}

/** An Ingester over `store` reading RELAY unless options say, as ingesterUnderTest wires it. */
const harness = (store: EventStore, options: Partial<IngesterOptions> = {}) => ingesterUnderTest(store, RELAY, options);

function storeDir(t: TestContext): string {
  const dir = tempDir('contrail-ingest-');
  t.after(() => dir.remove());
  return dir.path;
}

function openStore(t: TestContext, dataDir: string): EventStore {
  const store = new EventStore({ dataDir, hotLogBytes: 1 << 20 });
  t.after(() => store.close().catch(() => {}));
  return store;
}

describe('seq watermark', () => {
  test('frames at or below the saved seq are skipped after a restart and counted as duplicate_seq', async (t) => {
    const dataDir = storeDir(t);
    // Identity frames and commits of distinct DIDs: the rev check cannot catch these repeats.
    const frame = (seq: number) => (seq % 3 === 0 ? identity(seq, did(seq)) : post(seq, did(seq), 1));
    const label = (seq: number) => (seq % 3 === 0 ? identityLabel(seq, did(seq)) : postLabel(seq, did(seq)));

    const first = openStore(t, dataDir);
    const a = harness(first);
    assert.equal(a.ingester.resumeCursor(), undefined, 'a new store starts live');
    for (let seq = 1; seq <= 10; seq++) a.ingester.handle(frame(seq));
    assert.equal(a.ingester.resumeCursor(), 10, 'the watermark moves as frames are accepted');
    await a.ingester.flush();
    await first.close();

    const second = openStore(t, dataDir);
    const b = harness(second);
    assert.equal(b.ingester.resumeCursor(), 10);
    // The relay re-sends from before our cursor.
    for (let seq = 6; seq <= 15; seq++) b.ingester.handle(frame(seq));
    // And within one run, after a reconnect, again.
    b.ingester.handle(frame(12));
    b.ingester.handle(frame(15));
    await b.ingester.flush();
    assert.equal(await b.skipped('duplicate_seq'), 7);
    assert.equal(await b.skipped('stale_rev'), 0);
    assert.deepEqual(labels(second), Array.from({ length: 15 }, (_, i) => label(i + 1)));
    assert.deepEqual(second.upstreamCursor, { url: RELAY, seq: 15 });
  });

  test('a saved cursor from another upstream is not reused, with a warning', async (t) => {
    const dataDir = storeDir(t);
    const first = openStore(t, dataDir);
    const a = harness(first);
    for (let seq = 100; seq < 105; seq++) a.ingester.handle(identity(seq, did(seq)));
    await a.ingester.flush();
    await first.close();

    const second = openStore(t, dataDir);
    const b = harness(second, { upstreamUrl: OTHER_RELAY });
    assert.equal(b.ingester.resumeCursor(), undefined, 'starts live on the new upstream');
    const warning = b.logs.find((l) => l.level === 40 && l.savedUrl === RELAY);
    assert.ok(warning, 'warns that the saved cursor belongs to another upstream');
    assert.equal(warning.savedSeq, 104);
    assert.equal(warning.upstream, OTHER_RELAY);
    // The new relay's seqs are lower than the old watermark: all of them are new.
    for (let seq = 1; seq <= 3; seq++) b.ingester.handle(identity(seq, did(1_000 + seq)));
    await b.ingester.flush();
    assert.equal(await b.skipped('duplicate_seq'), 0);
    assert.equal(labels(second).length, 8);
    assert.deepEqual(second.upstreamCursor, { url: OTHER_RELAY, seq: 3 });
  });

  test('a FutureCursor error frame resets the watermark; other errors and infos do not', async (t) => {
    const store = openStore(t, storeDir(t));
    const h = harness(store);
    for (let seq = 50; seq <= 60; seq++) h.ingester.handle(identity(seq, did(seq)));
    await h.ingester.flush();
    h.ingester.handle(parse(errorFrame('ConsumerTooSlow', 'slow down')));
    h.ingester.handle(parse(infoFrame('OutdatedCursor', 'too old')));
    assert.equal(h.ingester.resumeCursor(), 60);
    assert.ok(h.logs.some((l) => l.level === 40 && /older than its backfill window/.test(l.msg)), 'OutdatedCursor is a warning');

    h.ingester.handle(parse(errorFrame('FutureCursor', 'Cursor in the future.')));
    assert.equal(h.ingester.resumeCursor(), undefined, 'reconnect live');
    // The relay was reset: its seqs start over and are stored.
    h.ingester.handle(identity(1, did(1)));
    h.ingester.handle(identity(2, did(2)));
    assert.equal(h.ingester.resumeCursor(), 2);
    await h.ingester.flush();
    assert.equal(await h.skipped('duplicate_seq'), 0);
    assert.deepEqual(labels(store).slice(-2), [identityLabel(1, did(1)), identityLabel(2, did(2))]);
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 2 });
  });
});

describe('per-DID rev check', () => {
  const A = did(1);
  const B = did(2);
  const C = did(3);

  test('commits whose rev is not newer are skipped: in one batch, across batches, across a reopen', async (t) => {
    const dataDir = storeDir(t);
    const first = openStore(t, dataDir);
    const a = harness(first);
    a.ingester.handle(post(1, A, 5));
    a.ingester.handle(post(2, A, 5)); // same rev again, in the same pending batch
    a.ingester.handle(post(3, A, 3)); // older
    a.ingester.handle(post(4, A, 6));
    a.ingester.handle(post(5, B, 1));
    a.ingester.handle(identity(6, A)); // identity and account events have no rev
    a.ingester.handle(parse(accountFrame({ seq: 7, did: A, active: true })));
    await a.ingester.flush();
    assert.equal(await a.skipped('stale_rev'), 2);
    assert.deepEqual(labels(first), [postLabel(1, A), postLabel(4, A), postLabel(5, B), identityLabel(6, A), `${A}#account@7`]);
    assert.equal(first.getRev(A), tidFor(6));
    assert.deepEqual(first.upstreamCursor, { url: RELAY, seq: 7 }, 'skipped frames still move the cursor');

    a.ingester.handle(post(8, B, 1)); // repeated in a later batch
    await a.ingester.flush();
    assert.equal(await a.skipped('stale_rev'), 3);
    await first.close();

    // A relay switch re-sends the same commits under new seqs.
    const second = openStore(t, dataDir);
    const b = harness(second, { upstreamUrl: OTHER_RELAY });
    b.ingester.handle(post(1, A, 6));
    b.ingester.handle(post(2, B, 1));
    b.ingester.handle(post(3, A, 7));
    await b.ingester.flush();
    assert.equal(await b.skipped('stale_rev'), 2);
    assert.deepEqual(labels(second).slice(5), [postLabel(3, A)]);
    assert.equal(second.getRev(A), tidFor(7));
  });

  test('a rev repeated while the batch holding it waits for its commit is skipped', async (t) => {
    // Commits are synchronous, so a batch waits only while its commit is retried: fail the first try.
    class OnceFailingStore extends EventStore {
      failures = 0;
      override async commit(batch: Batch): Promise<void> {
        if (this.failures-- > 0) throw new Error('EIO: transient write error');
        return super.commit(batch);
      }
    }
    const dataDir = storeDir(t);
    const store = new OnceFailingStore({ dataDir, hotLogBytes: 1 << 20 });
    t.after(() => store.close().catch(() => {}));
    const h = harness(store, { retryDelayMs: 20 });
    h.ingester.handle(post(1, A, 1));
    await h.ingester.flush();

    store.failures = 1;
    h.ingester.handle(post(2, C, 4));
    while ((await h.metrics.commitErrors.get()).values[0]!.value === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 1 }, 'precondition: the commit of seq 2 is waiting for its retry');
    h.ingester.handle(post(3, C, 4));
    await h.ingester.flush();
    assert.equal(await h.skipped('stale_rev'), 1);
    assert.deepEqual(labels(store), [postLabel(1, A), postLabel(2, C)]);
  });

  test('a rev in a batch the commit accepted but has not stored yet is not newer: skipped', async (t) => {
    const store = openStore(t, storeDir(t));
    // As a cluster leader's: the commit returns while the batch travels, and is stored later.
    const inFlight: Batch[] = [];
    const h = harness(store, { commit: async (batch) => void inFlight.push(batch) });
    h.ingester.handle(post(1, C, 4));
    await h.ingester.flush();
    assert.equal(inFlight.length, 1, 'precondition: the batch of seq 1 is in flight, not in the store');
    assert.equal(store.getRev(C), undefined);
    h.ingester.handle(post(2, C, 4));
    h.ingester.handle(post(3, C, 5));
    await h.ingester.flush();
    assert.equal(await h.skipped('stale_rev'), 1);
    assert.deepEqual(
      inFlight.flatMap((batch) => batch.entries.map((entry) => JSON.parse(entry.json.toString()).commit.rkey)),
      [tidFor(1), tidFor(3)],
    );
  });
});

describe('group commit and backpressure', () => {
  test('messages handed in one tick share a transaction; one per tick each get their own', async (t) => {
    const store = openStore(t, storeDir(t));
    const h = harness(store);
    assert.equal(h.ingester.commitDue, false);
    for (let seq = 1; seq <= 300; seq++) h.ingester.handle(post(seq, did(seq), 1));
    assert.equal(h.ingester.commitDue, true, 'read, not committed: replays let this commit go first');
    await h.ingester.flush();
    assert.equal(h.ingester.commitDue, false);
    const grouped = await h.commits();
    assert.ok(grouped >= 1 && grouped <= 2, `300 messages in one tick took ${grouped} transactions`);
    assert.equal(labels(store).length, 300);

    for (let seq = 301; seq <= 320; seq++) {
      h.ingester.handle(post(seq, did(seq), 1));
      await h.ingester.flush();
    }
    assert.equal((await h.commits()) - grouped, 20);
    assert.equal(labels(store).length, 320);
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 320 });
  });

  test('catching up, reads of later turns join the commit (one transaction for four); a live turn commits in the turn it was read', async (t) => {
    const store = openStore(t, storeDir(t));
    const h = harness(store);
    let seq = 0;
    for (let turn = 0; turn < 4; turn++) {
      for (let i = 0; i < 64; i++, seq++) h.ingester.handle(post(seq + 1, did(seq + 1), 1));
      await new Promise(setImmediate);
    }
    await h.ingester.flush();
    assert.equal(await h.commits(), 1, 'four turns of 64 frames each: one transaction');
    assert.equal(labels(store).length, 256);
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 256 });

    // Live (2,000 events/s): a few frames a turn, each turn's committed before the next turn's read.
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 3; i++, seq++) h.ingester.handle(post(seq + 1, did(seq + 1), 1));
      assert.equal(h.ingester.commitDue, true);
      await new Promise(setImmediate);
      assert.equal(labels(store).length, seq, 'committed in the turn its frames were read');
      assert.equal(h.ingester.commitDue, false);
    }
    assert.equal(await h.commits(), 6);
  });

  test('live, a burst one stall brought (64 events in one turn) commits in the turn it was read; a second such turn in a row gathers as catching up does', async (t) => {
    const store = openStore(t, storeDir(t));
    const h = harness(store);
    let seq = 0;
    const read = (count: number) => {
      for (let i = 0; i < count; i++, seq++) h.ingester.handle(post(seq + 1, did(seq + 1), 1));
    };
    // Live (2,000 events/s): a few frames a turn.
    for (let turn = 0; turn < 3; turn++) {
      read(3);
      await new Promise(setImmediate);
    }
    assert.equal(labels(store).length, seq);
    // The gateway's thread stalled ~30 ms (a GC pause, a wait for a core): its next read brings 64 events at once.
    read(64);
    await new Promise(setImmediate);
    assert.equal(labels(store).length, seq, 'committed in the turn its frames were read, not held for the turns after it');
    const before = await h.commits();
    // Still behind: the next turns bring as many again, and one commit gathers them.
    for (let turn = 0; turn < 3; turn++) {
      read(64);
      await new Promise(setImmediate);
    }
    await h.ingester.flush();
    assert.equal((await h.commits()) - before, 1, 'three more turns of 64: one transaction');
    assert.equal(labels(store).length, seq);
  });

  test("a seal's next step gives way to a commit of events read before its turn: the commit and its publish run first, and sealing still completes while every turn commits", async (t) => {
    const store = new EventStore({ dataDir: storeDir(t), hotLogBytes: 1 << 20, blockEvents: 4, fsync: false });
    t.after(() => store.close().catch(() => {}));
    const h = harness(store);
    /** Whether any of the seal's postings were written when each commit's listeners ran (its publish). */
    const indexAtPublish: boolean[] = [];
    store.onCommitted(() => indexAtPublish.push(store.bytesByTable().didIndex > 0));
    for (let seq = 1; seq <= 4; seq++) h.ingester.handle(post(seq, did(seq), 1));
    await h.ingester.flush();
    assert.equal(store.sealState.unsealedEvents, 4, 'a full block: its seal began, its steps are queued for the next turn');
    // Read in this turn, as a socket read hands frames over: the commit is queued behind the seal's step.
    h.ingester.handle(post(5, did(5), 1));
    await h.ingester.flush();
    assert.deepEqual(indexAtPublish, [false, false], 'the commit ran before the seal wrote any postings');

    let seq = 5;
    for (let turn = 0; store.indexState.sealedEvents < 4; turn++) {
      assert.ok(turn < 100, 'the block is sealed although a commit is due in every turn');
      h.ingester.handle(post(++seq, did(seq), 1));
      await h.ingester.flush();
    }
    assert.equal(labels(store).length, seq);
  });

  test('backpressure turns on when pending bytes exceed the bound and off after the commit', async (t) => {
    const store = openStore(t, storeDir(t));
    const h = harness(store, { maxPendingBytes: 4_000 });
    for (let seq = 1; seq <= 5; seq++) h.ingester.handle(post(seq, did(seq), 1));
    assert.deepEqual(h.backpressure, [], 'a few events stay under the bound');
    await h.ingester.flush();
    assert.deepEqual(h.backpressure, []);

    for (let seq = 6; seq <= 60; seq++) h.ingester.handle(post(seq, did(seq), 1));
    assert.deepEqual(h.backpressure, [true], 'paused as soon as the bound is crossed, before any commit');
    assert.equal((await h.metrics.ingestPaused.get()).values[0]!.value, 1);
    assert.ok((await h.metrics.pendingBytes.get()).values[0]!.value > 4_000);
    await h.ingester.flush();
    assert.deepEqual(h.backpressure, [true, false]);
    assert.equal((await h.metrics.ingestPaused.get()).values[0]!.value, 0);
    assert.equal((await h.metrics.pendingBytes.get()).values[0]!.value, 0);
    assert.equal(labels(store).length, 60);
  });
});

describe('commit failures', () => {
  /**
   * The real failure — LMDB refusing a commit because the disk is full — cannot be produced on
   * this machine (no small filesystem to fill, and lmdb-js grows its map on MDB_MAP_FULL), so
   * this store throws from its first `failures` commits and then commits for real.
   */
  class FailingStore extends EventStore {
    failures = 0;
    override async commit(batch: Batch): Promise<void> {
      if (this.failures > 0) {
        this.failures--;
        throw new Error('MDB_MAP_FULL: Environment mapsize limit reached');
      }
      return super.commit(batch);
    }
  }

  test('ingest pauses, retries and loses nothing; the saved cursor never runs ahead of the stored events', async (t) => {
    const dataDir = storeDir(t);
    const store = new FailingStore({ dataDir, hotLogBytes: 1 << 20 });
    t.after(() => store.close().catch(() => {}));
    const h = harness(store, { retryDelayMs: 1 });
    const frame = (seq: number) => (seq % 4 === 0 ? identity(seq, did(seq)) : post(seq, did(seq % 7), seq));
    const label = (seq: number) => (seq % 4 === 0 ? identityLabel(seq, did(seq)) : postLabel(seq, did(seq % 7)));

    // After every durable commit, the stored events are exactly those of the frames up to the saved seq.
    const violations: string[] = [];
    store.onCommitted(() => {
      const seq = store.upstreamCursor!.seq;
      const expected = Array.from({ length: seq }, (_, i) => label(i + 1));
      const stored = labels(store);
      if (JSON.stringify(stored) !== JSON.stringify(expected)) violations.push(`cursor ${seq} with ${stored.length} events`);
    });

    for (let seq = 1; seq <= 10; seq++) h.ingester.handle(frame(seq));
    await h.ingester.flush();
    assert.equal(labels(store).length, 10);

    store.failures = 3;
    for (let seq = 11; seq <= 20; seq++) h.ingester.handle(frame(seq));
    while ((await h.metrics.commitErrors.get()).values[0]!.value === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(h.backpressure.slice(0, 1), [true], 'a failed commit pauses reading');
    assert.deepEqual(h.health.slice(0, 1), [false]);
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 10 }, 'the cursor stays behind the unstored events');
    // Frames already on their way still arrive while paused; they wait with the failed batch.
    for (let seq = 21; seq <= 30; seq++) h.ingester.handle(frame(seq));
    assert.equal(h.ingester.resumeCursor(), 30);
    await h.ingester.flush();

    assert.equal((await h.metrics.commitErrors.get()).values[0]!.value, 3);
    assert.equal(h.health.at(-1), true, 'healthy again after the retry');
    assert.equal(h.backpressure.at(-1), false, 'reading resumes');
    assert.ok(h.logs.some((l) => l.level === 50 && /STORE COMMIT FAILED/.test(l.msg) && l.attempt === 1), 'the failure is logged as an error');
    assert.ok(h.logs.some((l) => l.level === 40 && l.attempt === 4 && /succeeded after retrying/.test(l.msg)));
    assert.deepEqual(violations, []);
    assert.deepEqual(labels(store), Array.from({ length: 30 }, (_, i) => label(i + 1)), 'every event exactly once, in order');
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 30 });
    await store.close();

    const reopened = openStore(t, dataDir);
    assert.deepEqual(labels(reopened), Array.from({ length: 30 }, (_, i) => label(i + 1)));
    assert.deepEqual(reopened.upstreamCursor, { url: RELAY, seq: 30 });
  });

  test('flush with a deadline gives up on commits that keep failing, with the cursor still behind them', async (t) => {
    const dataDir = storeDir(t);
    const store = new FailingStore({ dataDir, hotLogBytes: 1 << 20 });
    t.after(() => store.close().catch(() => {}));
    const retryDelayMs = 5;
    const h = harness(store, { retryDelayMs });
    for (let seq = 1; seq <= 5; seq++) h.ingester.handle(post(seq, did(seq), seq));
    await h.ingester.flush();
    store.failures = Infinity;
    for (let seq = 6; seq <= 9; seq++) h.ingester.handle(post(seq, did(seq), seq));
    assert.equal(await h.ingester.flush(200), false, 'shutdown does not wait forever on a failing disk');
    const errorsAtGiveUp = (await h.metrics.commitErrors.get()).values[0]!.value;
    assert.ok(errorsAtGiveUp >= 1);
    // Each failure logs when the next retry comes (retryInMs, backing off): twice the last one
    // announced, and no retry, is no retrying.
    const announced = h.logs.map((line) => line.retryInMs).filter((ms) => typeof ms === 'number');
    const lastAnnounced = announced.at(-1) ?? 0;
    assert.ok(lastAnnounced >= retryDelayMs, `the failures announced their retries: ${announced}`);
    await new Promise((resolve) => setTimeout(resolve, 2 * lastAnnounced));
    assert.equal((await h.metrics.commitErrors.get()).values[0]!.value, errorsAtGiveUp, 'no retries after giving up');
    assert.deepEqual(store.upstreamCursor, { url: RELAY, seq: 5 }, 'a restart reads the uncommitted frames again');
    assert.equal(labels(store).length, 5);
  });
});
