/**
 * The buffer's `meta` keeps three values about the per-DID index: the mark that it is inconsistent
 * (didIndexBroken), how many times it was rebuilt (didIndexRebuilds) and the blocks it has no
 * entries for (didIndexGaps). Unlike the seqs, the cursor or the partitions, all three are the
 * index's, and the index can be rebuilt from the blocks. One whose bytes changed on disk (it no
 * longer decodes, or decodes to another kind) refused the whole buffer, as a damaged seq does: the
 * gateway could not start until the operator moved the buffer aside, every event with it. A
 * writable start must instead say which value and why, bypass the index (DID replays scan, exact)
 * and rebuild it, which writes the three values again; a read-only one (contrail inspect) bypasses it.
 * A replay worker (SnapshotReader) reads the three at each read: it must read them as the store
 * does, or every read of every worker throws until the rebuild's end, each batch read again on the
 * main thread. Each value is read on its own: damaged gaps must not reset a sound rebuild count.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { EventStore, SnapshotReader } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { dids, stream } from './support/corrupt-did-index.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { readAll, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const REPO = dids[7]!;

/** Each value as stored (MessagePack), and its bytes after a bad sector or a stray write. */
const damages: Array<{ key: string; stored: unknown; change(value: Buffer): Buffer; what: string }> = [
  { key: 'didIndexGaps', stored: [[1, 2]], change: (v) => Buffer.concat([Buffer.from([0xc1]), v.subarray(1)]), what: 'the index gaps no longer decode' },
  { key: 'didIndexRebuilds', stored: 2, change: () => Buffer.from([0xa1, 0x32]), what: 'the rebuild count decodes to a string' },
  { key: 'didIndexBroken', stored: true, change: () => Buffer.from([0x05]), what: 'the inconsistency mark decodes to a number' },
];

for (const damage of damages) {
  test(`${damage.what} (meta "${damage.key}"): a writable start says so and rebuilds the per-DID index, a read-only one bypasses it; DID replays stay exact`, { timeout: 120_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-index-meta-damaged-');
    defer(() => dir.remove());
    const writer = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100 });
    await writer.commit({ entries: stream, revs: new Map() });
    await writer.close();
    const raw = openLmdb({ path: dir.path, maxDbs: 16 });
    const meta = raw.openDB<unknown, string>({ name: 'meta' });
    meta.putSync(damage.key, damage.stored);
    // A sound count beside the damaged value: the rebuild counts on from it.
    if (damage.key !== 'didIndexRebuilds') meta.putSync('didIndexRebuilds', 4);
    const binary = raw.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
    binary.putSync(damage.key, damage.change(Buffer.from(binary.getBinary(damage.key)!)));
    await raw.close();
    const ofRepo = texts(stream.filter((e) => e.did === REPO));

    const lines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];
    const logger = capturingLogger(lines, 'info');
    const reader = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, readOnly: true, logger });
    assert.equal(reader.didIndex.state, 'bypassed', 'a read-only start bypasses the index');
    assert.deepEqual(texts(readAll(reader, { dids: [REPO] })), ofRepo, 'its DID replay is exact');
    const worker = new SnapshotReader(reader.location, 0);
    const select = { dids: new Set([REPO]), collections: new Set<string>(), prefixes: [] };
    // Closed before the writable start: lmdb-js shares one environment per path within the process.
    const read = await (async () => {
      try {
        return worker.read(0, reader.lastTimeUs, { maxEntries: 10_000, select, filter: (e) => e.did === REPO, ...reader.indexState });
      } finally {
        await worker.close();
      }
    })();
    assert.ok(!read.trimmed, 'nothing is trimmed');
    assert.deepEqual(texts(read.entries), ofRepo, "a replay worker's DID read is exact, not refused");
    await reader.close();

    const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 100, logger });
    let closed = false;
    defer(() => (closed ? undefined : store.close()));
    const said = lines.filter((l) => l.level >= 50 && String(l.err).includes(`meta "${damage.key}"`));
    assert.ok(said.length >= 1, `an error line names the value: ${JSON.stringify(lines.filter((l) => l.level >= 50))}`);
    assert.match(said.at(-1)!.msg, /per-DID index/);
    assert.deepEqual(texts(readAll(store, { dids: [REPO] })), ofRepo, 'the DID replay is exact while the index is rebuilt');
    await waitUntil(() => store.didIndex.state === 'ok', 'the index rebuilt', 60_000);
    const indexReads = store.readPlans.didIndex;
    assert.deepEqual(texts(readAll(store, { dids: [REPO] })), ofRepo, 'and after, through the index');
    assert.ok(store.readPlans.didIndex > indexReads, 'through the index');
    closed = true;
    await store.close();

    const after = openLmdb({ path: dir.path, maxDbs: 16, readOnly: true });
    const rebuilt = after.openDB<unknown, string>({ name: 'meta' });
    assert.deepEqual([rebuilt.get('didIndexBroken'), rebuilt.get('didIndexGaps'), rebuilt.get('didIndexRebuilds')], [undefined, [], damage.key === 'didIndexRebuilds' ? 1 : 5], 'the rebuild wrote the three values again');
    await after.close();
  });
}
