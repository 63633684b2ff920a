/**
 * The crash test: the real gateway (`contrail serve` as a child process) ingests a long scripted
 * stream from a FakeRelay and is killed with SIGKILL at seeded random points, again and again,
 * restarting each time from its saved cursor. At the end the buffer must hold exactly the
 * upstream's ops in order — none missing, none duplicated — with time_us strictly increasing
 * across every restart.
 *
 * CONTRAIL_CRASH_SEED=<n> reruns with another seed (the seed is printed on failure).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventStore } from '../src/store/event-store.ts';
import { ContrailProcess, type ExitStatus } from './support/contrail-process.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { cleanup } from './support/cleanup.ts';
import { assertSameOps, eventOpId, upstreamOpIds } from './support/op-ids.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { mulberry32, SyntheticFirehose, type SyntheticFrame } from './support/synthetic.ts';

const SEED = Number(process.env.CONTRAIL_CRASH_SEED ?? 20261125);
const FRAMES = 3_500;
const KILLS = 10;
/** Frames pushed while the gateway is down, so every restart begins with a backlog to ingest. */
const BACKLOG = 100;
/** At most this many live frames are streamed to each gateway before it is killed. */
const MAX_STREAMED_PER_LIFE = 200;

/**
 * The built dist/cli.js, as an operator runs it (`npm test` builds it first): each of the eleven
 * starts loads the bundle instead of compiling the sources through tsx, which on a loaded machine
 * took most of the test's time.
 */
function startGateway(upstream: string, dataDir: string): ContrailProcess {
  return ContrailProcess.serve(['--upstream', upstream, '--data-dir', dataDir]);
}

/** The start-up log line describing the buffer it opened. */
async function opened(gateway: ContrailProcess): Promise<{ eventCount: number; upstreamCursor?: { seq: number }; lastTimeUs: number }> {
  return (await gateway.waitForLog('opened the event buffer')) as never;
}

function readSaved(dataDir: string) {
  const store = new EventStore({ dataDir, hotLogBytes: 0, readOnly: true });
  try {
    return { cursor: store.upstreamCursor, lastTimeUs: store.lastTimeUs, events: store.span().eventCount };
  } finally {
    void store.close();
  }
}

async function stats(port: number): Promise<{ eventCount: number; upstreamCursor: { seq: number } | null }> {
  const response = await fetch(`http://127.0.0.1:${port}/stats`);
  assert.equal(response.status, 200);
  return (await response.json()) as { eventCount: number; upstreamCursor: { seq: number } | null };
}

function storedEvents(dataDir: string): Array<{ timeUs: number; id: string }> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, readOnly: true });
  const out: Array<{ timeUs: number; id: string }> = [];
  try {
    let position = 0;
    for (;;) {
      const read = store.readAfter(position, { maxEntries: 1_000 });
      if (read.position === position) return out;
      position = read.position;
      for (const entry of read.entries) {
        const event = JSON.parse(entry.json.toString());
        assert.equal(event.time_us, entry.timeUs, 'the JSON carries its key');
        out.push({ timeUs: entry.timeUs, id: eventOpId(event) });
      }
    }
  } finally {
    void store.close();
  }
}

// Every wait below has its own bound; the test's only stops a hang. It is CPU-bound (eleven
// gateway starts, 3,500 frames ingested across them): on a quiet machine
// about 25 s, at a load of 20 (a tenth of a core) past 150 s with nothing wrong.
test(`SIGKILL at ${KILLS} random points during ingest loses and duplicates nothing (seed ${SEED})`, { timeout: 600_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-crash-');
  defer(() => dir.remove());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  defer(() => ContrailProcess.killAll());

  // The whole stream, made before the first gateway starts: making it blocks this process, relay
  // included, and a relay that cannot answer the handshake gets the dial abandoned and redialled.
  const frames: SyntheticFrame[] = new SyntheticFirehose({ seed: SEED, accounts: 400 }).frames(FRAMES);
  // First start: nothing saved, so the gateway starts live; the stream begins once it listens.
  let gateway = startGateway(relay.url, dir.path);
  const random = mulberry32(SEED);
  let pushed = 0;
  const push = (count: number) => {
    for (const end = Math.min(FRAMES, pushed + count); pushed < end; pushed++) relay.push({ seq: frames[pushed]!.seq, bytes: frames[pushed]!.bytes });
  };
  const firstPort = await gateway.waitServing();
  await relay.waitForConnections(1, 30_000);
  assert.equal(relay.cursors[0], undefined, 'an empty buffer starts live');
  push(100);
  await waitUntil(async () => (await stats(firstPort)).upstreamCursor !== null, 'the first commit', 30_000);

  // Each life: the relay holds a backlog for the gateway (frames pushed while it was down), then
  // streams live frames steadily — a few every few milliseconds — and the gateway is killed after
  // a random number of them, so it dies with frames arriving, pending, or being committed.
  const crashes: Array<{ streamed: number; pushed: number; savedSeq: number; lastTimeUs: number }> = [];
  let lifeStartSeq = (await stats(firstPort)).upstreamCursor!.seq;
  push(BACKLOG);
  for (let kills = 0; kills < KILLS; kills++) {
    // Once this gateway is committing (its first batch is durable), stream and kill.
    const port = await gateway.waitServing();
    await waitUntil(async () => (await stats(port)).upstreamCursor!.seq > lifeStartSeq, `gateway ${kills + 1} to commit`, 30_000);
    const streamed = 1 + Math.floor(random() * MAX_STREAMED_PER_LIFE);
    for (let sent = 0; sent < streamed; sent += 4) {
      push(Math.min(4, streamed - sent));
      // Between chunks, 2-5 ms; after the last one, in every other life none (frames still on the
      // wire, so at least half the kills land mid-ingest however fast the gateway stores), else 1-4 ms.
      const pauseMs = sent + 4 < streamed ? 2 + Math.floor(random() * 4) : kills % 2 === 0 ? 0 : 1 + Math.floor(random() * 4);
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    const pushedAtKill = pushed;
    gateway.child.kill('SIGKILL');
    const exit: ExitStatus = await gateway.exit;
    assert.equal(exit.signal, 'SIGKILL', `gateway ${kills + 1} was running until killed: ${gateway.tail()}`);
    const saved = readSaved(dir.path);
    assert.ok(saved.cursor, 'a cursor was saved');
    assert.equal(saved.cursor.url, relay.url);
    const previous = crashes.at(-1);
    if (previous) assert.ok(saved.cursor.seq >= previous.savedSeq, 'the saved cursor never goes back');
    crashes.push({ streamed, pushed: pushedAtKill, savedSeq: saved.cursor.seq, lastTimeUs: saved.lastTimeUs });

    // While it is down the relay moves on; then it restarts and resumes from the saved cursor.
    lifeStartSeq = saved.cursor.seq;
    push(BACKLOG);
    const connections = relay.cursors.length;
    gateway = startGateway(relay.url, dir.path);
    await gateway.waitServing();
    await relay.waitForConnections(connections + 1, 30_000);
    assert.equal(relay.cursors[connections], saved.cursor.seq, `restart ${kills + 1} resumed from the saved cursor`);
    const buffer = await opened(gateway);
    assert.equal(buffer.upstreamCursor?.seq, saved.cursor.seq, 'the start-up log reports the saved cursor');
    assert.equal(buffer.eventCount, saved.events, 'and the buffered event count');
    assert.equal(buffer.lastTimeUs, saved.lastTimeUs);
  }

  // The last gateway catches up with the whole stream, then stops gracefully.
  push(FRAMES);
  const port = await gateway.waitServing();
  const last = frames[FRAMES - 1]!.seq;
  await waitUntil(async () => (await stats(port)).upstreamCursor?.seq === last, 'ingest of the whole stream', 60_000);
  const expected = upstreamOpIds(frames);
  const finalStats = await stats(port);
  const { code } = await gateway.stop();
  assert.equal(code, 0, `graceful stop exits 0: ${gateway.tail()}`);

  const stored = storedEvents(dir.path);
  const storedIds = stored.map((e) => e.id);
  const expectedIds = expected.map((e) => e.id);
  assertSameOps(storedIds, expectedIds);
  assert.equal(finalStats.eventCount, expected.length, '/stats counts the same events');
  for (let i = 1; i < stored.length; i++) assert.ok(stored[i]!.timeUs > stored[i - 1]!.timeUs, `time_us increases at #${i}`);

  // Across each crash: the saved cursor and time_us describe exactly what was stored before it,
  // and every event stored after the restart has a larger time_us.
  for (const [i, crash] of crashes.entries()) {
    const next = expected.findIndex((op) => op.seq > crash.savedSeq);
    assert.ok(next > 0, `crash ${i + 1}: some events were saved before it`);
    assert.equal(stored[next - 1]!.timeUs, crash.lastTimeUs, `crash ${i + 1}: the saved last time_us is the newest event the saved cursor covers`);
    if (next < stored.length) assert.ok(stored[next]!.timeUs > crash.lastTimeUs, `crash ${i + 1}: the clock continued above it`);
  }
  // The kills landed while the stream was still flowing in, not after it was all stored.
  const midIngest = crashes.filter((c) => c.savedSeq < c.pushed).length;
  t.diagnostic(`kills (streamed: saved/pushed): ${crashes.map((c) => `${c.streamed}: ${c.savedSeq}/${c.pushed}`).join(', ')}`);
  assert.ok(midIngest >= KILLS / 3, `${midIngest} of ${KILLS} kills came before the gateway had stored everything pushed`);
  assert.ok(crashes.at(-1)!.savedSeq > crashes[0]!.savedSeq, 'ingest made progress between the crashes');
});
