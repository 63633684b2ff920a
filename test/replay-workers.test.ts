/**
 * Replays read on worker threads (src/server/replay-pool.ts), once per transport, through the
 * whole gateway: a subscriber that changes its filter or leaves while a worker reads for it
 * never gets that read's events; a worker killed while reads are in flight loses and duplicates
 * nothing (its reads are read on the main thread, and a new worker takes the next ones); and the
 * same replays served with --replay-workers 0 (the main thread) are byte for byte the same. As
 * contrail runs them, the worker threads, a restarted one too, run at nice 19 while the main thread
 * keeps its priority; the test harness's workers keep the process's, so that a machine loaded by
 * other processes does not starve the replays every other test waits for.
 * (test/replay-workers.fuzz.test.ts checks worker reads against main-thread reads read by read.)
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import { startGateway, type Gateway } from '../src/gateway.ts';
import { BACKGROUND_NICENESS } from '../src/threads/index.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { cleanup } from './support/cleanup.ts';
import { gateReplayReads } from './support/replay-read-gate.ts';
import { startTestGateway, tempDir, testConfig } from './support/gateway.ts';
import { FOLLOW, LIKE, POST, Subscription, Upstream, httpGet, queryFor, readWholeStream, storedEvent, waitUntil, wants, type FilterSpec } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Events in the buffer: many worker reads' worth, with a hot log that holds only the newest. */
const FRAMES = 2_500;
const HOT_LOG_BYTES = 32 * 1024;
/**
 * How long a replay of the whole buffer may take to reach the newest event: twelve at once, a
 * third of them compressed, took 47–55 s in all at a load of 20 and ran past a 60 s wait at 21–32
 * (this session's flake hunt). The wait is for the outcome; the bound only stops a hang.
 */
const WHOLE_REPLAY_WAIT_MS = 180_000;

const linuxThreads = existsSync('/proc/self/task');

/** The main thread's niceness before any worker started (the file loads first). */
const MAIN_THREAD_NICENESS = getPriority();

/** Each thread of this process and its niceness: field 19 of /proc/self/task/<tid>/stat. */
function threadNiceness(): Map<number, number> {
  const niceness = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended after the listing
    }
    // Fields after the command name, which is in parentheses and may hold spaces: the state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    niceness.set(Number(tid), Number(fields[19 - 3]));
  }
  return niceness;
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`replays on worker threads over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    let recorder: Subscription;

    const pool = () => gateway.server.replayPool!;
    const open = (query: string) => Subscription.open(gateway.port, query);
    /** A subscription's events as JSON text, compressed ones decompressed with the served dictionary. */
    const textsOf = async (s: Subscription) => {
      const decompressor = new Decompressor();
      decompressor.loadDictionary((await httpGet(gateway.port, '/dictionary')).body);
      return () => s.messages.map((m) => (m.binary ? decompressor.decompress(m.data) : m.data).toString('utf8'));
    };
    const newestOf = (texts: string[]) => (texts.length > 0 ? (JSON.parse(texts.at(-1)!).time_us as number) : 0);

    before(async () => {
      relay = await FakeRelay.start();
      dir = tempDir();
      gateway = await startTestGateway(relay.url, dir.path, { transport, hotCacheBytes: HOT_LOG_BYTES, replayWorkers: 1 }, { hub: { highWaterBytes: 64 * 1024 } });
      await relay.waitForConnections(1);
      up = new Upstream(relay, () => gateway.port);
      // Sees every event live: the stream replays are checked against.
      recorder = await open('');
      up.synthetic(FRAMES, 31, 300);
      await up.settle(60_000);
      await pool().ready();
    });

    after(async () => {
      await recorder?.close();
      await gateway?.stop();
      await relay?.stop();
      dir?.remove();
    });

    test('options_update while a worker reads: from the moment it is handled, only the new filter’s events, and no gap in either', async () => {
      const from: FilterSpec = { wantedCollections: [LIKE] };
      const to: FilterSpec = { wantedCollections: [POST, FOLLOW] };
      let attemptsWithReadInFlight = 0;
      for (let attempt = 0; attempt < 5; attempt++) {
        const s = await open(queryFor(from, { cursor: 0 }));
        const lastWanted = recorder.texts.map(storedEvent).filter((e) => wants(from, e)).at(-1)!.timeUs;
        // The subscriber replays alone: a read in flight is its own. A replay can also finish between
        // two polls; that attempt then checks the update after the handover to live only.
        let readInFlight = false;
        await waitUntil(() => (readInFlight = pool().pendingReads > 0) || newestOf(s.texts) >= lastWanted, 'a worker read in flight, or the replay done');
        if (readInFlight) attemptsWithReadInFlight++;
        s.send(JSON.stringify({ type: 'options_update', payload: { wantedCollections: to.wantedCollections } }));
        // When the pong arrives, the update was handled, and what was sent before it is here.
        await s.roundTrip();
        const handledAt = s.messages.length;
        up.create(`did:plc:${'sentinel'.padEnd(24, 's')}`, POST);
        const { newestTimeUs } = await up.settle();
        await Promise.all([s.waitForTime(newestTimeUs!), recorder.waitForTime(newestTimeUs!)]);
        const received = s.texts.map(storedEvent);
        const all = recorder.texts.map(storedEvent);
        for (let i = 1; i < received.length; i++) assert.ok(received[i]!.timeUs > received[i - 1]!.timeUs, `attempt ${attempt}: time_us strictly increases`);
        received.slice(handledAt).forEach((e, i) => assert.ok(wants(to, e), `attempt ${attempt}: event ${handledAt + i}, sent after the update was handled, is the new filter's (${e.collection})`));
        // Where the new filter took over: its first event the old filter does not want, or the first
        // one after the update was handled when that one passes both (an identity or account event).
        const switchAt = received.findIndex((e, i) => !wants(from, e) || (i >= handledAt && wants(to, e)));
        assert.ok(switchAt >= 0 && switchAt <= handledAt, `attempt ${attempt}: the new filter's events start by the time the update was handled`);
        const before = received.slice(0, switchAt).map((e) => e.raw);
        assert.deepEqual(before, all.filter((e) => wants(from, e)).slice(0, switchAt).map((e) => e.raw), `attempt ${attempt}: the old filter's events, from the cursor, without a gap`);
        const first = received[switchAt]!.timeUs;
        assert.deepEqual(received.slice(switchAt).map((e) => e.raw), all.filter((e) => e.timeUs >= first && wants(to, e)).map((e) => e.raw), `attempt ${attempt}: the new filter's events, without a gap`);
        await s.close();
      }
      assert.ok(attemptsWithReadInFlight > 0, 'in some attempt the update arrived while a worker read for the subscriber');
    });

    test('a subscriber that leaves while a worker reads for it: the read is dropped, others are served', async () => {
      const size = gateway.server.hub.size;
      // Each leaver's first answer is held between the worker and the hub until it has left: polling
      // for a read in flight missed a replay read ahead whole between two polls, and then waited on.
      const held: Array<() => void> = [];
      let answered = () => {};
      const ungate = gateReplayReads(pool(), { after: () => new Promise<void>((release) => (held.push(release), answered())) });
      try {
        for (let i = 0; i < 5; i++) {
          const readOut = new Promise<void>((resolve) => (answered = resolve));
          const leaving = await open('cursor=0');
          await readOut;
          await leaving.close();
          await waitUntil(() => gateway.server.hub.size === size, 'the leaver to be gone');
          for (const release of held.splice(0)) release();
        }
      } finally {
        ungate();
        for (const release of held.splice(0)) release();
      }
      await waitUntil(() => gateway.server.hub.size === size && pool().pendingReads === 0, 'the leavers to be gone and their reads answered');
      const whole = await readWholeStream(gateway.port);
      assert.deepEqual(whole.map((e) => e.raw), recorder.texts, 'a replay afterwards is the whole stream');
    });

    test('a worker killed while reads are in flight: every replay still gets each event once, in order, then live; a new worker takes over', async () => {
      const replays = await Promise.all(Array.from({ length: 12 }, (_, i) => open(`cursor=0${i % 3 === 0 ? '&compress=true' : ''}`)));
      await waitUntil(() => pool().pendingReads > 0, 'worker reads in flight');
      const [killed] = pool().threads();
      const terminated = killed!.terminate();
      await terminated;
      for (let i = 0; i < 50; i++) up.create(`did:plc:${'live'.padEnd(24, 'l')}`, LIKE);
      const { newestTimeUs } = await up.settle();
      await recorder.waitForTime(newestTimeUs!);
      for (const [i, s] of replays.entries()) {
        const texts = await textsOf(s);
        await waitUntil(() => newestOf(texts()) >= newestTimeUs!, `replay ${i} to reach the newest event`, WHOLE_REPLAY_WAIT_MS);
        assert.deepEqual(texts(), recorder.texts, `replay ${i}${i % 3 === 0 ? ' (compressed)' : ''}: the whole stream, then live`);
        await s.close();
      }
      const fresh = await readWholeStream(gateway.port);
      assert.deepEqual(fresh.map((e) => e.raw), recorder.texts, 'a replay afterwards is the whole stream');
      assert.ok(pool().threads().length === 1 && pool().threads()[0] !== killed, 'a new worker was started for the reads that followed');
    });

    test('the test harness’s replay workers, a restarted one too, keep the process’s priority', { skip: linuxThreads ? false : 'no /proc/self/task: not Linux' }, () => {
      // After the test before it, the one worker running is the one started after a worker was killed.
      assert.ok(pool().threads().length >= 1, 'a replay worker runs');
      const niceness = threadNiceness();
      assert.deepEqual([...niceness].filter(([, nice]) => nice !== MAIN_THREAD_NICENESS), [], `every thread runs at the process's nice ${MAIN_THREAD_NICENESS}`);
    });

    test('the same replays read on the main thread (--replay-workers 0) are byte for byte the same', async () => {
      const queries = ['cursor=0', `cursor=0&wantedCollections=${POST}`, 'cursor=0&wantedCollections=app.bsky.graph.*', 'cursor=0&maxMessageSizeBytes=400', `cursor=${recorder.events[Math.floor(recorder.events.length / 2)]!.time_us}`];
      const dids = [...new Set(recorder.events.slice(0, 200).map((e) => e.did as string))].slice(0, 3);
      queries.push(queryFor({ wantedDids: dids }, { cursor: 0 }), 'cursor=0&compress=true');
      const replay = async (): Promise<Buffer[][]> => {
        const { newestTimeUs } = await up.settle();
        return Promise.all(
          queries.map(async (query) => {
            const s = await open(query);
            const texts = await textsOf(s);
            // Every query wants the sentinel, the newest event.
            await waitUntil(() => newestOf(texts()) >= newestTimeUs!, `${query} to reach the newest event`, WHOLE_REPLAY_WAIT_MS);
            await s.close();
            return s.messages.map((m) => m.data);
          }),
        );
      };
      up.identity(dids[0]!, 'sentinel.bsky.social');
      const withWorkers = await replay();
      await recorder.close();
      await gateway.stop();
      gateway = await startTestGateway(relay.url, dir.path, { transport, hotCacheBytes: HOT_LOG_BYTES, replayWorkers: 0 }, { hub: { highWaterBytes: 64 * 1024 } });
      assert.equal(gateway.server.replayPool, undefined, '--replay-workers 0 starts no workers');
      await relay.waitForConnections(2);
      const onMainThread = await replay();
      for (const [i, query] of queries.entries()) {
        assert.ok(withWorkers[i]!.length > 0, `${query}: events were replayed`);
        assert.deepEqual(onMainThread[i], withWorkers[i], `${query}: the same frames`);
      }
      recorder = await open('');
    });
  });
}

test('as contrail runs them, replay workers run at the lowest OS priority (nice 19), a restarted one too; the main thread keeps the process’s', { skip: linuxThreads ? false : 'no /proc/self/task: not Linux', timeout: 120_000 }, async (t) => {
  if (MAIN_THREAD_NICENESS === BACKGROUND_NICENESS) return t.skip(`the tests run at nice ${BACKGROUND_NICENESS} already: a worker's lowering cannot be seen`);
  const defer = cleanup(t);
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const dir = tempDir();
  defer(() => dir.remove());
  // startGateway with no tuning, as the CLI calls it.
  const gateway = await startGateway(testConfig(relay.url, dir.path, { hotCacheBytes: HOT_LOG_BYTES, replayWorkers: 1 }));
  defer(() => gateway.stop());
  const pool = gateway.server.replayPool!;
  const workersAtBackground = (what: string) => {
    const niceness = threadNiceness();
    const atBackground = [...niceness].filter(([, nice]) => nice === BACKGROUND_NICENESS);
    assert.equal(niceness.get(process.pid), MAIN_THREAD_NICENESS, `${what}: the main thread (its thread id is the pid) keeps the niceness it had before any worker started`);
    assert.equal(pool.threads().length, 1, `${what}: a replay worker runs`);
    assert.equal(atBackground.length, 1, `${what}: exactly the replay worker thread runs at nice ${BACKGROUND_NICENESS} (${JSON.stringify([...niceness])})`);
  };
  await pool.ready();
  workersAtBackground('the first worker');

  await relay.waitForConnections(1);
  const up = new Upstream(relay, () => gateway.port);
  up.synthetic(300, 7, 300);
  const { newestTimeUs } = await up.settle(60_000);
  const [killed] = pool.threads();
  await killed!.terminate();
  // A replay from the oldest event reads the buffer beyond the hot log, so a new worker is started for it.
  const replay = await Subscription.open(gateway.port, 'cursor=0');
  defer(() => replay.close());
  await replay.waitForTime(newestTimeUs!, 'the newest event', 60_000);
  assert.ok(pool.threads()[0] !== killed, 'a new worker was started');
  workersAtBackground('the restarted worker');
});
