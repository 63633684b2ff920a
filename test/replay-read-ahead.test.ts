/**
 * A replay worker reads a subscriber's next batch while the one before it is sent (ReplayReads'
 * read-ahead), so the worker's reading and the main thread's sending overlap instead of taking
 * turns. Against a real worker thread on a real buffer: each batch handed out has the read of the
 * next one in flight, and no more is asked while one batch is unsent and one answered (the bound);
 * the batches are the buffer once, in order; a subscriber that leaves has its read ahead dropped,
 * and the worker is told it is done after the last read asked for it; an answer read for a
 * position the subscriber left is not used and reads nothing more ahead (its position alone tells),
 * nor one asked before a reset that left position and filter as they were (its generation alone
 * tells); max_message_size skips are counted once,
 * when their batch is used (not held, not dropped, not read again); retention trimming past a
 * read ahead ends the replay as too slow (`trimmed`), never a jump to the oldest event, even for a
 * subscriber that followed the oldest until then. Through the whole gateway, on both transports:
 * JSON and compressed replays of many worker batches get every event once, in order, then live,
 * with reads asked ahead; an options_update while a read ahead is held back gets none of the old
 * filter's events after it and loses none of the new one's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Decompressor } from 'zstd-napi';
import type { Gateway } from '../src/gateway.ts';
import { parseFilter } from '../src/server/filter.ts';
import type { ReplayRequest } from '../src/server/replay-pool.ts';
import type { ReplayBatch, ReplayReads } from '../src/server/replay-reads.ts';
import type { Subscriber } from '../src/server/subscriber.ts';
import { EventStore } from '../src/store/index.ts';
import { BLOCK, BUNDLED_DICTIONARY, blockStream, writeBuffer } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { gateReplayReads, type ReadRequest } from './support/replay-read-gate.ts';
import { replayReadsRig } from './support/replay-reads-rig.ts';
import { texts } from './support/store-reads.ts';
import { exposedMetric, FOLLOW, httpGet, LIKE, POST, queryFor, storedEvent, Subscription, Upstream, waitUntil, wants, type FilterSpec } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Three blocks, none in the hot log (0 bytes): every read of them is a worker's, of up to 512 events. */
async function rigOnBlocks(t: TestContext) {
  const defer = cleanup(t);
  const dir = tempDir('contrail-read-ahead-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const events = blockStream(3);
  await writeBuffer(dataDir, events);
  const logger = pino({ level: 'silent' });
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, logger });
  defer(() => store.close());
  const rig = await replayReadsRig(defer, store, logger);
  /** The subscriber's next batch, or what ends its replay, once no read of it is in flight. */
  const settled = async (subscriber: Subscriber) => {
    for (;;) {
      const wake = rig.nextWake();
      const next = rig.reads.next(subscriber);
      if (next !== 'reading') return next;
      await wake;
    }
  };
  return { events, store, rig, settled };
}

test('each batch a worker read is handed out with the next one being read; no more is asked while one is unsent and one answered; the batches are the buffer once, in order (JSON and compressed)', { timeout: 60_000 }, async (t) => {
  const { events, rig } = await rigOnBlocks(t);
  const last = events.at(-1)!.timeUs;
  for (const zstd of [false, true]) {
    const subscriber = rig.subscriberAt(0, zstd);
    const aheadBefore = rig.readsAhead();
    const got: string[] = [];
    let batches = 0;
    let next: ReturnType<ReplayReads['next']> = await rig.answerTo(subscriber);
    for (;;) {
      assert.ok(typeof next === 'object' && 'entries' in next, `a batch, not ${String(next)}`);
      const batch: ReplayBatch = next;
      batches++;
      if (batch.position < last) {
        assert.equal(rig.pool.pendingReads, 1, `batch ${batches} (to ${batch.position}): the batch after it is being read while it is unsent`);
        await rig.nextWake();
        assert.equal(rig.pool.pendingReads, 0, `batch ${batches}: with it unsent and the next one answered, nothing more is asked`);
      } else {
        assert.equal(rig.pool.pendingReads, 0, 'nothing is read ahead past the newest event');
      }
      if (zstd) assert.equal(batch.frames?.length, batch.entries.length, "a compressed subscriber's batch has the worker's frames");
      got.push(...texts(batch.entries));
      // Sent whole, as the hub's step does.
      rig.reads.finished(subscriber);
      subscriber.position = batch.position;
      if (subscriber.position === last) break;
      next = rig.reads.next(subscriber);
    }
    assert.ok(batches >= 6, `many worker batches (${batches})`);
    assert.equal(rig.readsAhead() - aheadBefore, batches - 1, 'every batch after the first was read ahead');
    assert.deepEqual(got, texts(events), `${zstd ? 'compressed' : 'JSON'}: every event once, in order`);
    rig.reads.reset(subscriber);
  }
});

test('a subscriber that leaves with a read ahead in flight: the answer is dropped, and the worker is told the replay is done after the last read asked for it', { timeout: 60_000 }, async (t) => {
  const { events, rig, settled } = await rigOnBlocks(t);
  /** What the worker thread was sent, in order: each read's reader, or a replay said done. */
  const sent: Array<{ read: number | undefined } | { done: number }> = [];
  const [thread] = rig.pool.threads();
  const post = thread!.postMessage.bind(thread);
  thread!.postMessage = (message: ReplayRequest | { readerDone: number }, ...rest) => {
    sent.push('readerDone' in message ? { done: message.readerDone } : { read: message.reader });
    post(message, ...rest);
  };
  const leaving = rig.subscriberAt(0);
  const first = await rig.nextBatch(leaving);
  assert.equal(rig.pool.pendingReads, 1, 'a read ahead is in flight');
  // It leaves as the hub's close does: closed, its reads forgotten.
  leaving.mode = 'closed';
  rig.reads.reset(leaving);
  await rig.nextWake();
  assert.equal(rig.pool.pendingReads, 0, 'the read ahead was answered');
  assert.deepEqual(sent.filter((m) => ('read' in m ? m.read : m.done) === leaving.id), [{ read: leaving.id }, { read: leaving.id }, { done: leaving.id }], 'two reads, then done: nothing asked for it after');

  // Replayed from another position while a read ahead is in flight (the hub's replayFrom): the read ahead is not used.
  const moving = rig.subscriberAt(0);
  await rig.nextBatch(moving);
  assert.equal(rig.pool.pendingReads, 1, 'a read ahead is in flight');
  rig.reads.reset(moving);
  moving.position = events[2 * BLOCK + 100]!.timeUs;
  const from = await settled(moving);
  assert.ok(typeof from === 'object' && 'entries' in from, `a batch, not ${String(from)}`);
  assert.deepEqual(texts(from.entries).slice(0, 3), texts(events.slice(2 * BLOCK + 101, 2 * BLOCK + 104)), 'read from its new position, not the one read ahead');
  assert.ok(first.position < events[2 * BLOCK]!.timeUs);
});

test('an answer read for a position the subscriber has left is dropped, and reads no further ahead: the next worker reads are from its position and the one after it', { timeout: 60_000 }, async (t) => {
  const { events, rig, settled } = await rigOnBlocks(t);
  const asked: ReadRequest[] = [];
  t.after(gateReplayReads(rig.pool, { before: async (request) => void asked.push(request) }));
  const subscriber = rig.subscriberAt(0);
  await rig.nextBatch(subscriber);
  assert.equal(rig.pool.pendingReads, 1, 'a read ahead is in flight');
  rig.reads.finished(subscriber);
  // Moved without a reset, which no hub path does today (ReplayReads' guard for it, on its own).
  const moved = events[2 * BLOCK + 100]!.timeUs;
  subscriber.position = moved;
  const askedBefore = asked.length;
  const batch = await settled(subscriber);
  assert.ok(typeof batch === 'object' && 'entries' in batch, `a batch, not ${String(batch)}`);
  // The answer read for the position left has the same generation and filter: its position alone tells.
  assert.deepEqual(texts(batch.entries).slice(0, 3), texts(events.slice(2 * BLOCK + 101, 2 * BLOCK + 104)), 'read from its position, not the answer read for the one it left');
  assert.deepEqual(
    asked.slice(askedBefore).map((request) => request.position),
    [moved, batch.position],
    'the read from its position and the one ahead of it, none through the rest of the buffer after the answer it left',
  );
});

test('a read ahead asked before a reset is not used, though the position and filter are the same after it (the generation alone tells): the batch is read anew', { timeout: 60_000 }, async (t) => {
  const { events, rig, settled } = await rigOnBlocks(t);
  const asked: ReadRequest[] = [];
  t.after(gateReplayReads(rig.pool, { before: async (request) => void asked.push(request) }));
  const subscriber = rig.subscriberAt(0);
  const first = await rig.nextBatch(subscriber);
  assert.equal(rig.pool.pendingReads, 1, 'a read ahead is in flight');
  rig.reads.finished(subscriber);
  subscriber.position = first.position;
  // Replayed from where it is, its filter unchanged (as the hub's replayFrom for a hello does).
  const askedBefore = asked.length;
  rig.reads.reset(subscriber);
  const batch = await settled(subscriber);
  assert.ok(typeof batch === 'object' && 'entries' in batch, `a batch, not ${String(batch)}`);
  assert.deepEqual(texts(batch.entries), texts(events.slice(first.entries.length, first.entries.length + batch.entries.length)), 'the events after its position');
  assert.deepEqual(
    asked.slice(askedBefore).map((request) => request.position),
    [first.position, batch.position],
    'read again from its position after the reset, and ahead of that: the read from before it was not used',
  );
});

test('max_message_size skips in a batch a worker read are counted once, when the batch is used: not while its answer is held, not for an answer dropped unused, not twice when it is read again', { timeout: 60_000 }, async (t) => {
  const { events, rig, settled } = await rigOnBlocks(t);
  const last = events.at(-1)!.timeUs;
  // Events 1000 on have a digit more in their rev, rkey and text than those before: each is too large.
  const limit = events[1_000]!.json.length - 1;
  const tooLarge = events.filter((event) => event.json.length > limit).length;
  assert.ok(tooLarge > 0 && events[999]!.json.length <= limit);
  const filterOf = () => parseFilter({ maxMessageSizeBytes: limit });
  const subscriber = rig.subscriberAt(0);
  subscriber.filter = filterOf();
  const first = await rig.nextBatch(subscriber);
  assert.deepEqual(texts(first.entries), texts(events.slice(0, first.entries.length)), 'the first batch: none too large');
  await rig.nextWake();
  assert.equal(rig.pool.pendingReads, 0, 'the batch after it, with every event too large, answered and held');
  assert.equal(rig.tooLarge(), 0, 'not counted while held');
  rig.reads.finished(subscriber);
  subscriber.position = first.position;
  // An options_update to the same filter: the held answer is dropped unused, and read again.
  subscriber.filter = filterOf();
  const second = await settled(subscriber);
  assert.ok(typeof second === 'object' && 'entries' in second, `a batch, not ${String(second)}`);
  assert.deepEqual(texts(second.entries), texts(events.slice(first.entries.length, 1_000)), 'the rest of the events that are not too large');
  assert.equal(second.position, last, 'read to the newest event');
  assert.equal(rig.tooLarge(), tooLarge, 'each event skipped counted once, when its batch was used');
});

test('retention trimming past a read ahead ends the replay as too slow (trimmed), never a jump: the read ahead never follows the oldest event', { timeout: 60_000 }, async (t) => {
  const { events, store, rig, settled } = await rigOnBlocks(t);
  const ahead: ReadRequest[] = [];
  const ungate = gateReplayReads(rig.pool, {
    // The read ahead (not the first, from 0) reaches the worker only once retention removed the first block.
    before: async (request) => {
      if (request.position === 0) return;
      ahead.push(request);
      await store.trimBefore(events[BLOCK]!.timeUs, BLOCK);
    },
  });
  t.after(ungate);
  // Its cursor was older than the buffer: it follows the oldest event until something is sent.
  const subscriber = rig.subscriberAt(0, false, true);
  const first = await rig.nextBatch(subscriber);
  assert.ok(first.entries.length > 0 && first.position < events[BLOCK - 1]!.timeUs, 'the first batch, within the first block');
  // Sent whole, as the hub's step does: it starts from here.
  subscriber.startFromHere(first.fromOldest);
  rig.reads.finished(subscriber);
  subscriber.position = first.position;
  assert.equal(await settled(subscriber), 'trimmed', 'the read ahead found its position trimmed');
  assert.ok(store.trimmedUpTo > first.position, 'retention removed events after the position');
  assert.equal(ahead.length, 1, 'one read was asked ahead');
  assert.equal(ahead[0]!.position, first.position, 'from where the first batch ended');
  assert.equal(ahead[0]!.fromOldest, false, 'not following the oldest event');
});

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`reads ahead through the gateway over ${transport}`, { skip }, () => {
    /** Many worker reads' worth, with a hot log that holds only the newest. */
    const FRAMES = 2_500;
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    let recorder: Subscription;
    const open = (query: string) => Subscription.open(gateway.port, query);
    const readsAhead = () => exposedMetric(gateway.metricsPort, 'contrail_replay_reads_ahead_total');

    before(async () => {
      relay = await FakeRelay.start();
      dir = tempDir();
      gateway = await startTestGateway(relay.url, dir.path, { transport, hotCacheBytes: 32 * 1024, replayWorkers: 1 }, { hub: { highWaterBytes: 64 * 1024 } });
      await relay.waitForConnections(1);
      up = new Upstream(relay, () => gateway.port);
      recorder = await open('');
      up.synthetic(FRAMES, 37, 300);
      await up.settle(60_000);
      await gateway.server.replayPool!.ready();
    });

    after(async () => {
      await recorder?.close();
      await gateway?.stop();
      await relay?.stop();
      dir?.remove();
    });

    test('a JSON and a compressed replay of the whole buffer, read ahead: every event once, in order, then live', async () => {
      const decompressor = new Decompressor();
      decompressor.loadDictionary((await httpGet(gateway.port, '/dictionary')).body);
      for (const query of ['cursor=0', 'cursor=0&compress=true']) {
        const before = await readsAhead();
        const s = await open(query);
        const textsOf = () => s.messages.map((m) => (m.binary ? decompressor.decompress(m.data) : m.data).toString('utf8'));
        await waitUntil(() => textsOf().length >= recorder.texts.length, `${query}: the buffer replayed`, 180_000);
        up.create(`did:plc:${'live'.padEnd(24, 'l')}`, LIKE);
        const { newestTimeUs } = await up.settle();
        await recorder.waitForTime(newestTimeUs!);
        await waitUntil(() => textsOf().length >= recorder.texts.length, `${query}: the live event`);
        assert.deepEqual(textsOf(), recorder.texts, `${query}: the whole stream once, in order, then live`);
        assert.ok((await readsAhead()) - before >= 2, `${query}: reads were asked ahead (${(await readsAhead()) - before})`);
        await s.close();
      }
    });

    test('an options_update while a read ahead is held back: from the moment it is handled, only the new filter’s events, and no gap in either', async () => {
      const from: FilterSpec = { wantedCollections: [LIKE] };
      const to: FilterSpec = { wantedCollections: [POST, FOLLOW] };
      let held: ReadRequest | undefined;
      let asked = 0;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      // The subscriber's second read (the first one's answer asks it at once) is held back.
      const ungate = gateReplayReads(gateway.server.replayPool!, {
        before: async (request) => {
          if (++asked !== 2) return;
          held = request;
          await released;
        },
      });
      try {
        const aheadBefore = await readsAhead();
        const s = await open(queryFor(from, { cursor: 0 }));
        await waitUntil(() => held !== undefined, 'a second read asked');
        assert.equal((await readsAhead()) - aheadBefore, 1, 'it was asked ahead');
        const all = recorder.texts.map(storedEvent);
        const firstBatch = all.filter((e) => wants(from, e) && e.timeUs <= held!.position).map((e) => e.raw);
        await waitUntil(() => s.messages.length >= firstBatch.length, 'the first batch sent whole');
        s.send(JSON.stringify({ type: 'options_update', payload: { wantedCollections: to.wantedCollections } }));
        // When the pong arrives, the update was handled, and what was sent before it is here.
        await s.roundTrip();
        const handledAt = s.messages.length;
        release();
        up.create(`did:plc:${'sentinel'.padEnd(24, 's')}`, POST);
        const { newestTimeUs } = await up.settle();
        await Promise.all([s.waitForTime(newestTimeUs!, 'the sentinel', 180_000), recorder.waitForTime(newestTimeUs!)]);
        const received = s.texts.map(storedEvent);
        const everything = recorder.texts.map(storedEvent);
        assert.deepEqual(received.slice(0, handledAt).map((e) => e.raw), firstBatch, "before the update, the old filter's first batch, from the cursor, without a gap; nothing of the read held back");
        received.slice(handledAt).forEach((e, i) => assert.ok(wants(to, e), `event ${handledAt + i}, sent after the update was handled, is the new filter's (${e.collection})`));
        assert.deepEqual(received.slice(handledAt).map((e) => e.raw), everything.filter((e) => e.timeUs > held!.position && wants(to, e)).map((e) => e.raw), "the new filter's events from there on, without a gap");
        await s.close();
      } finally {
        release();
        ungate();
      }
    });
  });
}
