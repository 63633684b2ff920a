/**
 * A data dir whose data.mdb LMDB cannot map as it is: shorter than LMDB's meta pages (another
 * program's file, or one cut short at its start), empty where it cannot be made (`inspect` opens
 * read-only), or cut short after its meta pages (a copy or a restore that did not finish). LMDB
 * reads such a file through its memory map and the process dies of SIGSEGV or SIGBUS with nothing
 * said. `contrail serve` and `contrail inspect` must say what is wrong with the file and exit.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { runContrail } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';

const serve = (dataDir: string) => runContrail(['serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--upstream', 'ws://127.0.0.1:9']);
const inspect = (dataDir: string) => runContrail(['inspect', '--data-dir', dataDir]);

function dataDirWith(root: string, name: string, bytes: Buffer): string {
  const dataDir = join(root, name);
  mkdirSync(dataDir);
  writeFileSync(join(dataDir, 'data.mdb'), bytes);
  return dataDir;
}

/** A real buffer's data.mdb (a few hundred pages). */
async function realDataFile(root: string): Promise<Buffer> {
  const dataDir = join(root, 'real');
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: 100 });
  const entries: Entry[] = Array.from({ length: 3_000 }, (_, i) => {
    const timeUs = 1_700_000_000_000_000 + i;
    return { timeUs, did: `did:plc:file${i % 40}`, kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(`{"time_us":${timeUs},"text":"${'x'.repeat(i % 300)}"}`) };
  });
  await store.commit({ entries, revs: new Map() });
  await store.close();
  return readFileSync(join(dataDir, 'data.mdb'));
}

test("a data.mdb shorter than LMDB's meta pages, empty for inspect, or cut short after them: serve and inspect say what is wrong with it and exit, never die of a signal", { timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-damaged-data-file-');
  defer(() => dir.remove());
  const real = await realDataFile(dir.path);
  assert.ok(real.length > 64 * 1024, `a real buffer of ${real.length} bytes`);

  const short = dataDirWith(dir.path, 'short', Buffer.from('hello\n'));
  for (const [what, run] of [['serve', serve], ['inspect', inspect]] as const) {
    const result = run(short);
    assert.equal(result.signal, null, `${what} on a 6-byte data.mdb died of ${result.signal}`);
    assert.equal(result.status, 1, `${what} on a 6-byte data.mdb: ${result.stderr}`);
    assert.match(result.stderr, /data\.mdb is not an LMDB database \(6 bytes/, what);
  }

  const empty = dataDirWith(dir.path, 'empty', Buffer.alloc(0));
  const inspected = inspect(empty);
  assert.equal(inspected.signal, null, `inspect on an empty data.mdb died of ${inspected.signal}`);
  assert.equal(inspected.status, 2, inspected.stderr);
  assert.match(inspected.stderr, /no event buffer in .*data\.mdb is empty/);

  const cut = dataDirWith(dir.path, 'cut', real.subarray(0, 4 * 4096));
  for (const [what, run] of [['serve', serve], ['inspect', inspect]] as const) {
    const result = run(cut);
    assert.equal(result.signal, null, `${what} on a data.mdb cut short died of ${result.signal}`);
    assert.equal(result.status, 1, `${what} on a data.mdb cut short: ${result.stderr}`);
    assert.match(result.stderr, /data\.mdb is cut short: the file has 16384 bytes \(4 pages, and its newest meta page names page \d+/, what);
  }
});

test("a data.mdb whose meta page names a page size LMDB cannot have (a damaged meta page): serve and inspect say so and exit, never die of a signal", { timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-damaged-page-size-');
  defer(() => dir.remove());
  const real = await realDataFile(dir.path);
  // The free-page table's record starts 24 bytes into the meta, which starts after the page header
  // (24 bytes in lmdb-js's LMDB, where the magic number is); its first field is the page size.
  const magicAt = real.readUInt32LE(24) === 0xbeefc0de ? 24 : 16;
  assert.equal(real.readUInt32LE(magicAt), 0xbeefc0de);
  assert.equal(real.readUInt32LE(magicAt + 24), 4096, 'the page size is where it is read from');
  // 1: LMDB maps the file with one-byte pages, and the process dies of a signal (SIGBUS, SIGSEGV); 0: no number of pages at all.
  for (const pageSize of [1, 0]) {
    const bytes = Buffer.from(real);
    bytes.writeUInt32LE(pageSize, magicAt + 24);
    const dataDir = dataDirWith(dir.path, `page-size-${pageSize}`, bytes);
    for (const [what, run] of [['serve', serve], ['inspect', inspect]] as const) {
      const result = run(dataDir);
      assert.equal(result.signal, null, `${what} on a meta page naming ${pageSize}-byte pages died of ${result.signal}`);
      assert.equal(result.status, 1, `${what} on a meta page naming ${pageSize}-byte pages: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`data\\.mdb is not an LMDB database \\(its meta page names ${pageSize}-byte pages`), what);
    }
  }
});
