/**
 * Issue #10's "a disk that fills up mid-transaction … stop ingest without losing what was
 * committed", on a real full disk: the Ingester and a real EventStore on a small tmpfs that fills
 * up while events keep coming. ingest.test.ts's commit-failure tests throw a made-up MDB_MAP_FULL
 * from a subclass; store-bad-input.test.ts's full-disk test hits RLIMIT_FSIZE (EFBIG) in a child,
 * at the store only. This one gets the kernel's ENOSPC through LMDB, through the Ingester's path:
 * the error line, ingest paused, the cursor behind what is not stored, nothing committed lost,
 * and ingest resuming by itself once there is room.
 */
import assert from 'node:assert/strict';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventStore } from '../src/store/event-store.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../src/upstream/messages.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { smallFileSystem } from './support/small-file-system.ts';
import { ingesterUnderTest, storedEvents } from './support/upstream-harness.ts';

const RELAY = 'wss://relay-one.test/xrpc/com.atproto.sync.subscribeRepos';

function did(n: number): string {
  return `did:plc:${String(n).padStart(24, 'a')}`;
}

/** A one-op post whose text is incompressible noise, so the disk fills in a few thousand events. */
function post(seq: number): UpstreamMessage {
  const noise = Array.from({ length: 24 }, (_, i) => ((seq * 2654435761 + i * 40503) >>> 0).toString(36)).join('');
  return parseMessage(
    decodeFrame(
      commitFrame({
        seq,
        repo: did(seq % 50),
        rev: tidFor(seq),
        ops: [{ action: 'create', path: `app.bsky.feed.post/${tidFor(seq)}`, record: { $type: 'app.bsky.feed.post', text: noise, createdAt: '2026-01-01T00:00:00.000Z' } }],
      }),
      5_000_000,
    ),
  );
}

function rkeys(store: EventStore): string[] {
  return storedEvents(store).map((event) => event.commit.rkey);
}

test('a disk that really fills (ENOSPC on a tmpfs) while ingesting: a STORE COMMIT FAILED line, ingest paused with the cursor behind, nothing committed lost, and ingest resumes once there is room', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('contrail-enospc-');
  const at = join(dir.path, 'disk');
  const disk = smallFileSystem(at, '80m');
  const open: EventStore[] = [];
  t.after(async () => {
    try {
      for (const store of open) await store.close().catch(() => {});
      disk?.unmount();
    } finally {
      dir.remove();
    }
  });
  if (!disk) {
    t.skip('cannot mount a tmpfs here (needs root): a commit on a full disk is not tested');
    return;
  }
  const dataDir = join(at, 'data');
  const store = new EventStore({ dataDir, hotLogBytes: 1 << 20, fsync: false, mapSizeBytes: 64 << 20 });
  open.push(store);
  const { ingester, metrics, logs, backpressure: paused } = ingesterUnderTest(store, RELAY, { retryDelayMs: 20 });
  const commitErrors = async () => (await metrics.commitErrors.get()).values[0]?.value ?? 0;

  let seq = 0;
  for (; seq < 2_000; seq++) ingester.handle(post(seq + 1));
  assert.equal(await ingester.flush(), true);
  const committedBefore = rkeys(store);
  assert.equal(committedBefore.length, 2_000);

  // Fill the file system to the last block, then keep ingesting, a turn's worth at a time.
  const filler = join(at, 'filler');
  const { bavail, bsize } = statfsSync(at);
  writeFileSync(filler, Buffer.alloc(bavail * bsize));
  for (let round = 0; round < 400 && (await commitErrors()) === 0; round++) {
    for (let i = 0; i < 50; i++, seq++) ingester.handle(post(seq + 1));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok((await commitErrors()) > 0, 'a commit failed on the full disk');
  const failure = logs.find((l) => l.level === 50 && /STORE COMMIT FAILED/.test(l.msg));
  assert.ok(failure, `the failure is logged as an error: ${JSON.stringify(logs.filter((l) => l.level >= 40).slice(0, 3))}`);
  assert.match(String(failure.err), /space|ENOSPC|MDB_/i, 'the line says why');
  assert.ok(paused.includes(true), 'ingest paused reading');
  const cursor = store.upstreamCursor!.seq;
  assert.ok(cursor < seq, 'the cursor stays behind the events not stored');
  assert.deepEqual(rkeys(store), Array.from({ length: cursor }, (_, i) => tidFor(i + 1)), 'the stored events are exactly those up to the cursor');

  rmSync(filler);
  assert.equal(await ingester.flush(60_000), true, 'the retry succeeds once there is room');
  assert.equal(paused.at(-1), false, 'reading resumes');
  assert.ok(logs.some((l) => /succeeded after retrying/.test(l.msg)));
  assert.deepEqual(rkeys(store), Array.from({ length: seq }, (_, i) => tidFor(i + 1)), 'every event exactly once, in order');
  assert.deepEqual(store.upstreamCursor, { url: RELAY, seq });
  await open.pop()!.close();

  const reopened = new EventStore({ dataDir, hotLogBytes: 1 << 20, fsync: false, mapSizeBytes: 64 << 20 });
  open.push(reopened);
  assert.deepEqual(rkeys(reopened), Array.from({ length: seq }, (_, i) => tidFor(i + 1)), 'the buffer reopens whole');
});
