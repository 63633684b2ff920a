/**
 * Pages of the buffer's LMDB file damaged on disk so that LMDB itself refuses a read (not a
 * block whose bytes changed, which zstd's checksum notices: server-damaged-block.test.ts):
 * MDB_PAGE_NOTFOUND where a block's frame points past the file, MDB_CORRUPTED where a page of
 * the per-DID index is no longer a B-tree page. LMDB marks the read transaction failed; contrail
 * must end only the replay that met the damage, with the reason (close 1011), count and log it,
 * and serve every other replay, before and after, as if nothing happened.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { BLOCK, LIKE, REPO_IN_EVERY_BLOCK, blockStream, writeBuffer } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess, REPLAY_ON_WORKER_WAIT_MS } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';
import { breakLeafPagesOf, pointValuePastFile } from './support/lmdb-pages.ts';
import { httpGet, SUBSCRIBE_EVENTS, Subscription, upgradeRequest } from './support/subscribe-client.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';
/** The block whose frame of posts LMDB cannot find: the buffer's second. */
const LOST = { from: BLOCK, to: 2 * BLOCK - 1 };
/** The repo whose page of the per-DID index is broken. */
const REPO = REPO_IN_EVERY_BLOCK;

/** A buffer of `events` in blocks of BLOCK, closed; returns LMDB's page size. */
async function buffer(dataDir: string, events: Entry[]): Promise<number> {
  await writeBuffer(dataDir, events);
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  await raw.close();
  return pageSize;
}

/** The stored frame of one block partition (closed again after). */
async function frameOf(dataDir: string, key: [end: number, part: number]): Promise<Buffer> {
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const frame = Buffer.from(raw.openDB<Buffer, [number, number]>({ name: 'blocks', encoding: 'binary' }).getBinary(key)!);
  await raw.close();
  return frame;
}

const timesOf = (messages: Array<Record<string, any>>) => messages.filter((m) => m.kind === 'commit').map((m) => m.time_us as number);

async function serve(t: Parameters<typeof cleanup>[0], dataDir: string, replayWorkers: string): Promise<{ contrail: ContrailProcess; port: number }> {
  const defer = cleanup(t);
  const contrail = ContrailProcess.serve(['--upstream', NO_UPSTREAM, '--data-dir', dataDir, '--replay-workers', replayWorkers]);
  defer(() => contrail.stop());
  const port = await contrail.waitServing();
  defer(() => Subscription.closeAll());
  return { contrail, port };
}

async function disconnects(contrail: ContrailProcess, reason: string): Promise<number> {
  const metricsPort = (await contrail.waitForLog((line) => line.msg === 'serving Prometheus metrics at /metrics')).port as number;
  const body = (await httpGet(metricsPort, '/metrics')).body.toString();
  return Number(new RegExp(`^contrail_subscriber_disconnects_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(body)?.[1] ?? 0);
}

for (const replayWorkers of ['0', '1']) {
  test(`--replay-workers ${replayWorkers}: a block whose frame LMDB cannot find (MDB_PAGE_NOTFOUND) ends each replay that reaches it with BufferDamaged, and every later read is served`, { timeout: 900_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-page-not-found-');
    defer(() => dir.remove());
    const events = blockStream(5);
    const times = events.map((e) => e.timeUs);
    const dataDir = join(dir.path, 'data');
    const pageSize = await buffer(dataDir, events);
    pointValuePastFile(dataDir, pageSize, await frameOf(dataDir, [times[LOST.to]!, 1]));
    const { contrail, port } = await serve(t, dataDir, replayWorkers);

    // The first replay meets the lost page (and LMDB fails the read transaction it was read in);
    // the second must be read as the first was, not fail on that transaction.
    for (const round of [1, 2]) {
      const client = await Subscription.open(port, 'cursor=0');
      const close = await client.waitClosed(REPLAY_ON_WORKER_WAIT_MS);
      assert.deepEqual(timesOf(client.events), times.slice(0, LOST.from), `replay ${round}: every event before the block:\n${contrail.tail(8)}`);
      assert.equal(client.events.at(-1)!.error, 'BufferDamaged', `replay ${round}: ${JSON.stringify(client.events.at(-1))} ${JSON.stringify(close)}`);
      assert.match(client.events.at(-1)!.message, /MDB_PAGE_NOTFOUND/, 'naming what LMDB said');
      assert.equal(close.code, 1011);
    }
    const after = await Subscription.open(port, `cursor=${times[LOST.to]! + 1}`);
    await after.waitForTime(times.at(-1)!, undefined, REPLAY_ON_WORKER_WAIT_MS);
    assert.deepEqual(timesOf(after.events), times.slice(LOST.to + 1), 'a cursor after the block reads to the end');
    assert.equal(contrail.child.exitCode, null, `still running:\n${contrail.tail()}`);
    assert.equal(await disconnects(contrail, 'buffer_damaged'), 2);
  });

  test(`--replay-workers ${replayWorkers}: a page of the per-DID index LMDB refuses (MDB_CORRUPTED) ends the replay that reads it with BufferUnreadable (1011), counted and logged; other replays are served`, { timeout: 900_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-corrupted-page-');
    defer(() => dir.remove());
    const events = blockStream(5);
    const times = events.map((e) => e.timeUs);
    const dataDir = join(dir.path, 'data');
    const pageSize = await buffer(dataDir, events);
    breakLeafPagesOf(dataDir, pageSize, didHash(REPO));
    const { contrail, port } = await serve(t, dataDir, replayWorkers);

    for (const round of [1, 2]) {
      const client = await Subscription.open(port, `wantedDids=${REPO}&cursor=0`);
      const close = await client.waitClosed(REPLAY_ON_WORKER_WAIT_MS);
      const error = client.events.at(-1) ?? {};
      assert.equal(error.error, 'BufferUnreadable', `replay ${round} ends with the reason, not ${JSON.stringify(error)} ${JSON.stringify(close)}:\n${contrail.tail(8)}`);
      assert.match(error.message, /MDB_[A-Z_]+/, 'naming what LMDB said');
      assert.equal(close.code, 1011);
      assert.match(close.reason, /^BufferUnreadable: /);
    }
    // Replays that read no page of the index are served whole.
    const all = await Subscription.open(port, 'cursor=0');
    await all.waitForTime(times.at(-1)!, undefined, REPLAY_ON_WORKER_WAIT_MS);
    assert.deepEqual(timesOf(all.events), times, 'an unfiltered replay gets every event');
    const likes = await Subscription.open(port, `wantedCollections=${LIKE}&cursor=0`);
    await likes.waitForTime(events.filter((e) => e.collection === LIKE).at(-1)!.timeUs, undefined, REPLAY_ON_WORKER_WAIT_MS);
    assert.deepEqual(timesOf(likes.events), events.filter((e) => e.collection === LIKE).map((e) => e.timeUs));

    assert.equal(contrail.child.exitCode, null, `still running:\n${contrail.tail()}`);
    assert.equal(await disconnects(contrail, 'buffer_unreadable'), 2);
    const said = contrail.logs.filter((line) => line.level === 50 && /MDB_[A-Z_]+/.test(String(line.err)));
    assert.ok(said.length >= 1, `logged at error level:\n${contrail.tail()}`);
  });
}

test('a v2 seq cursor whose block LMDB cannot look up (a page of the seq table damaged on disk) is refused before the upgrade with 503 BufferUnreadable, counted; other subscribers are served', { timeout: 900_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-unreadable-seqs-');
  defer(() => dir.remove());
  const events = blockStream(5);
  const times = events.map((e) => e.timeUs);
  const dataDir = join(dir.path, 'data');
  const pageSize = await buffer(dataDir, events);
  // The seq table's keys as LMDB stores them (lmdb-js's key encoding): its page, the only one, is broken.
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const key = Buffer.from([...raw.openDB<number, Buffer>({ name: 'blockSeqs', keyEncoding: 'binary' }).getKeys({ limit: 1 })][0]!);
  await raw.close();
  breakLeafPagesOf(dataDir, pageSize, key);
  const { contrail, port } = await serve(t, dataDir, '0');

  const refused = await upgradeRequest(port, `${SUBSCRIBE_EVENTS}?cursor=${BLOCK + 100}`).catch((err: Error) => assert.fail(`no answer (${err.message}):\n${contrail.tail(8)}`));
  assert.equal(refused.status, 503, `refused with the reason, not ${refused.status} ${refused.body.toString()}:\n${contrail.tail(8)}`);
  const body = JSON.parse(refused.body.toString());
  assert.equal(body.error, 'BufferUnreadable');
  assert.match(body.message, /MDB_[A-Z_]+/);

  const all = await Subscription.open(port, 'cursor=0');
  await all.waitForTime(times.at(-1)!, undefined, REPLAY_ON_WORKER_WAIT_MS);
  assert.deepEqual(timesOf(all.events), times, 'a v1 replay gets every event');
  assert.equal(contrail.child.exitCode, null, `still running:\n${contrail.tail()}`);
  const metricsPort = (await contrail.waitForLog((line) => line.msg === 'serving Prometheus metrics at /metrics')).port as number;
  assert.match((await httpGet(metricsPort, '/metrics')).body.toString(), /^contrail_subscriber_connections_total\{wire="v2",result="buffer_unreadable"\} 1$/m);
});
