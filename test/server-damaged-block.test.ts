/**
 * A block of the buffer whose bytes were damaged on disk (a bad sector, a flipped bit: LMDB keeps
 * no checksums, zstd's frame checksum is what notices) is met by every replay from before it.
 * contrail serve must keep serving: each subscriber that reaches the block is told which events
 * cannot be read and how to resume past them (an error message, then a close with the reason),
 * the error is logged once, and replays that start after the block are not affected. A v2 seq
 * cursor inside the block is resolved without reading it, and meets the damage in its replay.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { BLOCK, LIKE, POST, REPO_IN_EVERY_BLOCK, blockStream, writeBuffer } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess, REPLAY_ON_WORKER_WAIT_MS } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';
import { HttpStream } from './support/http-stream.ts';
import { httpGet, SUBSCRIBE_EVENTS, Subscription } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';
/** The damaged block: the buffer's second; its partition of posts (the first collection numbered) is damaged, its likes' are whole. */
const DAMAGED = { from: BLOCK, to: 2 * BLOCK - 1 };

/** A buffer of `events` in blocks of BLOCK, whose second block's frame has a byte flipped where it lies in data.mdb. */
async function bufferWithDamagedBlock(dataDir: string, events: Entry[]): Promise<void> {
  await writeBuffer(dataDir, events);
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const frame = Buffer.from(raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' }).getBinary([events[DAMAGED.to]!.timeUs, 1])!);
  await raw.close();
  const file = readFileSync(join(dataDir, 'data.mdb'));
  const at = file.indexOf(frame);
  assert.ok(at > 0 && file.indexOf(frame, at + 1) < 0, 'the frame lies once in data.mdb');
  file[at + (frame.length >> 1)]! ^= 0x5a;
  writeFileSync(join(dataDir, 'data.mdb'), file);
}

const timesOf = (messages: Array<Record<string, any>>) => messages.filter((m) => m.kind === 'commit').map((m) => m.time_us as number);

for (const [{ transport, skip }, replayWorkers] of (await transportsUnderTest()).map((t, i) => [t, i === 0 ? '1' : '0'] as const)) {
  test(`over ${transport}, --replay-workers ${replayWorkers}: a block damaged on disk ends the replays that reach it with the events it holds and where to resume, logged once; the gateway serves on`, { skip, timeout: 900_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-damaged-block-');
    defer(() => dir.remove());
    const events = blockStream(5);
    const times = events.map((e) => e.timeUs);
    const dataDir = join(dir.path, 'data');
    await bufferWithDamagedBlock(dataDir, events);
    const first = times[DAMAGED.from]!;
    const end = times[DAMAGED.to]!;

    const contrail = ContrailProcess.serve(['--upstream', NO_UPSTREAM, '--data-dir', dataDir, '--transport', transport, '--replay-workers', replayWorkers]);
    defer(() => contrail.stop());
    const port = await contrail.waitServing();
    defer(() => Subscription.closeAll());
    defer(() => HttpStream.closeAll());

    // Two replays from the start, one after the other: both get the first block, then the reason.
    for (const round of [1, 2]) {
      const client = await Subscription.open(port, 'cursor=0');
      const close = await client.waitClosed(REPLAY_ON_WORKER_WAIT_MS);
      assert.deepEqual(timesOf(client.events), times.slice(0, DAMAGED.from), `replay ${round}: every event before the damaged block, once, in order`);
      const error = client.events.at(-1)!;
      assert.equal(error.type, 'error', `replay ${round} ends with an error message, not ${JSON.stringify(error)} and ${JSON.stringify(close)}:\n${contrail.tail(8)}`);
      assert.equal(error.error, 'BufferDamaged');
      assert.match(error.message, new RegExp(`time_us ${first} to ${end}`), 'it names the events that cannot be read');
      assert.match(error.message, new RegExp(`cursor above ${end}`), 'and where to resume');
      assert.equal(close.code, 1011, `replay ${round}: closed as a server error: ${JSON.stringify(close)}`);
      assert.match(close.reason, /^BufferDamaged: /);
    }

    // Filtered replays read several blocks at a time, by partition or through the per-DID index:
    // each gets its events before the block, then the reason. The likes' partition is whole.
    const before = events.slice(0, DAMAGED.from);
    for (const [query, wanted] of [
      [`wantedDids=${REPO_IN_EVERY_BLOCK}&cursor=0`, before.filter((e) => e.did === REPO_IN_EVERY_BLOCK)],
      [`wantedCollections=${POST}&cursor=0`, before.filter((e) => e.collection === POST)],
    ] as const) {
      const client = await Subscription.open(port, query);
      const close = await client.waitClosed(REPLAY_ON_WORKER_WAIT_MS);
      assert.deepEqual(timesOf(client.events), wanted.map((e) => e.timeUs), `${query}: every event before the damaged block`);
      assert.equal(client.events.at(-1)!.error, 'BufferDamaged', query);
      assert.equal(close.code, 1011, query);
    }
    const likes = await Subscription.open(port, `wantedCollections=${LIKE}&cursor=0`);
    await likes.waitForTime(events.filter((e) => e.collection === LIKE).at(-1)!.timeUs, undefined, REPLAY_ON_WORKER_WAIT_MS);
    assert.deepEqual(timesOf(likes.events), events.filter((e) => e.collection === LIKE).map((e) => e.timeUs), 'the likes, all of them');

    // A cursor after the block reads on to the end; a v2 seq cursor inside it meets the damage.
    const after = await Subscription.open(port, `cursor=${end + 1}`);
    await after.waitForTime(times.at(-1)!, undefined, REPLAY_ON_WORKER_WAIT_MS);
    assert.deepEqual(timesOf(after.events), times.slice(DAMAGED.to + 1));
    const v2 = await Subscription.open(port, `cursor=${DAMAGED.from + 100}`, { path: SUBSCRIBE_EVENTS });
    assert.equal((await v2.waitClosed(REPLAY_ON_WORKER_WAIT_MS)).code, 1011, 'a v2 cursor in the damaged block is closed with the reason');

    // An HTTP stream has no close frame: its last line says why.
    const ndjson = await HttpStream.open(port, '/stream.ndjson', `cursor=${first}`);
    await ndjson.ended;
    const last = JSON.parse(ndjson.messages.at(-1)!.data);
    assert.equal(last.error, 'BufferDamaged', `the stream's last line: ${JSON.stringify(last)}`);

    assert.equal(contrail.child.exitCode, null, `still running:\n${contrail.tail()}`);
    const metricsPort = (await contrail.waitForLog((line) => line.msg === 'serving Prometheus metrics at /metrics')).port as number;
    assert.match((await httpGet(metricsPort, '/metrics')).body.toString(), /^contrail_subscriber_disconnects_total\{reason="buffer_damaged"\} 6$/m, 'each of the six counted');
    const said = contrail.logs.filter((line) => line.level === 50 && /damaged block/.test(String(line.msg)));
    assert.equal(said.length, 1, `one error line however many replays met the block: ${JSON.stringify(said)}`);
    assert.equal(said[0]!.first, first);
    assert.equal(said[0]!.end, end);
  });
}
