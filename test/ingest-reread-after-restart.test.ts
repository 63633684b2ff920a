/**
 * A restart while an earlier stage (verification) holds a repo's messages resumes the relay below
 * them, so it reads again frames that were handled before: the saved cursor says which (up to
 * `through`, except the held repos' messages from their lowest held seq), and only the held
 * repos' messages are stored, #identity and #account events (which have no rev to tell) included.
 * A second restart in the middle of that re-read still stores each event once. With more held
 * repos than the window saves (256), only the resume seq is saved: nothing is lost, commits are
 * still stored once, and #identity/#account events read again are stored again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CursorClock } from '../src/events/clock.ts';
import { EventStore } from '../src/store/event-store.ts';
import { Ingester } from '../src/store/ingest.ts';
import { createStoreMetrics } from '../src/store/metrics.ts';
import { DropReporter } from '../src/upstream/drop.ts';
import { decodeFrame, parseMessage, type UpstreamMessage } from '../src/upstream/index.ts';
import { createUpstreamMetrics } from '../src/upstream/metrics.ts';
import { accountFrame, commitFrame, identityFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { storedEvents } from './support/upstream-harness.ts';

const URL = 'wss://relay.example/xrpc/com.atproto.sync.subscribeRepos';
const [ALICE, BOB, CAROL] = ['did:plc:alice', 'did:plc:bob', 'did:plc:carol'];
const post = (seq: number) => ({ action: 'create' as const, path: `app.bsky.feed.post/${tidFor(seq)}`, record: { $type: 'app.bsky.feed.post', text: `post ${seq}`, createdAt: '2026-12-01T00:00:00.000Z' } });
const message = (bytes: Uint8Array): UpstreamMessage => parseMessage(decodeFrame(bytes, 10_000_000));
/** The relay's frames: bob's (2, 6) are the ones held while his key is resolved. */
const frames = new Map<number, UpstreamMessage>([
  [1, message(commitFrame({ seq: 1, repo: ALICE, rev: tidFor(1), ops: [post(1)] }))],
  [2, message(commitFrame({ seq: 2, repo: BOB, rev: tidFor(2), ops: [post(2)] }))],
  [3, message(identityFrame({ seq: 3, did: CAROL, handle: 'carol.example.com' }))],
  [4, message(accountFrame({ seq: 4, did: CAROL, active: true }))],
  [5, message(commitFrame({ seq: 5, repo: ALICE, rev: tidFor(5), ops: [post(5)] }))],
  [6, message(identityFrame({ seq: 6, did: BOB, handle: 'bob.example.com' }))],
  [7, message(accountFrame({ seq: 7, did: CAROL, active: false }))],
]);

function open(dataDir: string, held: () => [string, number][]) {
  const store = new EventStore({ dataDir, hotLogBytes: 8 * 1024 * 1024 });
  const logger = pino({ level: 'silent' });
  const registry = new Registry();
  const ingester = new Ingester({
    store,
    clock: new CursorClock(store.lastTimeUs),
    upstreamUrl: URL,
    logger,
    metrics: createStoreMetrics(registry),
    drops: new DropReporter(createUpstreamMetrics(registry).drops, logger),
    onBackpressure: () => {},
    heldBelow: () => held().reduce<number | undefined>((lowest, [, seq]) => Math.min(lowest ?? seq, seq), undefined),
    heldRepos: held,
  });
  /** Hands the relay's frames from the resume cursor on (as a reconnect would), up to `last`. */
  const read = (last: number, skip: number[] = [], from = (ingester.resumeCursor() ?? 0) + 1) => {
    for (let seq = from; seq <= last; seq++) if (!skip.includes(seq)) ingester.handle(frames.get(seq)!);
  };
  const stop = async () => {
    assert.ok(await ingester.flush());
    await store.close();
  };
  return { store, ingester, read, stop };
}

async function stored(dataDir: string): Promise<string[]> {
  const store = new EventStore({ dataDir, hotLogBytes: 8 * 1024 * 1024, readOnly: true });
  try {
    return storedEvents(store).map((e) => `${e.kind} ${e.did} ${e.identity?.seq ?? e.account?.seq ?? e.commit?.rev}`);
  } finally {
    await store.close();
  }
}

for (const secondRestart of [false, true]) {
  test(`a restart below held messages stores the held repos' messages and nothing twice${secondRestart ? ', across a second restart mid-way' : ''}`, async (t) => {
    const dir = tempDir('contrail-reread-');
    t.after(() => dir.remove());
    // Bob's messages are held (his key is being resolved) while the others go ahead.
    const first = open(dir.path, () => [[BOB, 2]]);
    first.read(7, [2, 6], 1);
    await first.stop();
    assert.equal(first.store.upstreamCursor?.seq, 1, 'the saved cursor stays below the held seq 2');

    // Restart: nothing is held now; the relay is read again from seq 2.
    let again = open(dir.path, () => []);
    if (secondRestart) {
      again.read(4);
      await again.stop();
      again = open(dir.path, () => []);
    }
    again.read(7);
    await again.stop();

    const events = await stored(dir.path);
    assert.deepEqual(events, [
      `commit ${ALICE} ${tidFor(1)}`,
      `identity ${CAROL} 3`,
      `account ${CAROL} 4`,
      `commit ${ALICE} ${tidFor(5)}`,
      `account ${CAROL} 7`,
      `commit ${BOB} ${tidFor(2)}`,
      `identity ${BOB} 6`,
    ]);
  });
}

test('with more repos held than the saved window takes (256), the cursor saves only the resume seq, and a restart still stores every held message, each commit once', async (t) => {
  const dir = tempDir('contrail-reread-many-');
  t.after(() => dir.remove());
  // Bob and 300 other repos (whose messages came before seq 1) are held.
  const many: [string, number][] = [[BOB, 2], ...Array.from({ length: 300 }, (_, i): [string, number] => [`did:plc:held${i}`, 2])];
  const first = open(dir.path, () => many);
  first.read(7, [2, 6], 1);
  await first.stop();
  assert.deepEqual(first.store.upstreamCursor, { url: URL, seq: 1 }, 'only the resume seq, below the held seq 2');

  const again = open(dir.path, () => []);
  again.read(7);
  await again.stop();
  const events = await stored(dir.path);
  // Nothing lost; commits are kept out by their revs; #identity/#account read again are stored again.
  assert.deepEqual(events, [
    `commit ${ALICE} ${tidFor(1)}`,
    `identity ${CAROL} 3`,
    `account ${CAROL} 4`,
    `commit ${ALICE} ${tidFor(5)}`,
    `account ${CAROL} 7`,
    `commit ${BOB} ${tidFor(2)}`,
    `identity ${CAROL} 3`,
    `account ${CAROL} 4`,
    `identity ${BOB} 6`,
    `account ${CAROL} 7`,
  ]);
});
