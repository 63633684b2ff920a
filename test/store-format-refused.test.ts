/**
 * Issue #10: "a store written by an older contrail … refuse to start with the reason", as an
 * operator meets it. store.test.ts refuses a format-1 buffer (no format key) in-process; the
 * other layouts contrail has written — format 2 (uncompressed events with seq) and format 3 (the
 * first blocks, a per-DID index of one B-tree entry per event) — and a newer contrail's buffer
 * take the other branch of the check, and a start of `contrail serve` on one must end with the
 * reason on stderr and exit 1, leaving the buffer as it was.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { EventStore } from '../src/store/index.ts';
import { ContrailProcess } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';

/** A real buffer with a few events, then stamped with another store format, as that contrail would have left it. */
async function bufferOfFormat(dataDir: string, format: number): Promise<void> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false });
  const entries = Array.from({ length: 10 }, (_, i) => {
    const timeUs = 1_700_000_000_000_000 + i;
    return { timeUs, did: 'did:plc:formatformatformatformatf', kind: 'identity' as const, collection: null, json: Buffer.from(`{"time_us":${timeUs}}`) };
  });
  await store.commit({ entries, cursor: { url: 'wss://relay.test', seq: 10 }, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  await raw.openDB({ name: 'meta' }).put('format', format);
  await raw.close();
}

for (const format of [2, 3, 99]) {
  test(`a buffer of store format ${format}: the store refuses it with the reason, and contrail serve exits 1 saying so, the buffer untouched`, { timeout: 120_000 }, async (t) => {
    const dir = tempDir('contrail-format-');
    t.after(() => dir.remove());
    const dataDir = join(dir.path, 'data');
    await bufferOfFormat(dataDir, format);
    const before = readFileSync(join(dataDir, 'data.mdb'));

    const reason = new RegExp(`written by a contrail with store format ${format}; this contrail reads format \\d+ and will not misread it`);
    assert.throws(() => new EventStore({ dataDir, hotLogBytes: 0 }), reason);
    assert.throws(() => new EventStore({ dataDir, hotLogBytes: 0, readOnly: true }), reason);

    const contrail = new ContrailProcess(['serve', '--upstream', NO_UPSTREAM, '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0']);
    t.after(() => contrail.stop());
    assert.deepEqual(await contrail.exit, { code: 1, signal: null });
    const said = [...contrail.stderr, ...contrail.logs.map((line) => String(line.msg ?? ''))].join('\n');
    assert.match(said, reason, `the reason is on stderr or in the log: ${said.slice(0, 500)}`);
    assert.match(said, /Move that folder aside/);
    assert.ok(readFileSync(join(dataDir, 'data.mdb')).equals(before), 'the old buffer is untouched');
    assert.equal(existsSync(join(dataDir, 'contrail-run.json')), false, 'a refused start leaves no run marker behind');
  });
}
