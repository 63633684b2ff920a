/**
 * Issue #10, "Bad input and failure": "a dictionary file that changed … gets a clear log line and
 * a defined outcome — tested". The outcome (old blocks stay readable, the buffer keeps every
 * dictionary it used) is tested in store-bad-input.test.ts; this is the line: a start whose
 * --zstd-dictionary is not the one the buffer's newest blocks were compressed with (another file,
 * or new contents under the same zstd ID, or back to an earlier one) warns, naming both
 * dictionaries and saying the stored blocks stay readable; a start with the same one says nothing
 * about it. Found by audit: the store added the new dictionary silently.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { readAll, texts } from './support/store-reads.ts';
import { capturingLogger } from './support/upstream-harness.ts';

const BUNDLED = readFileSync(fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url)));

test('opening a buffer with another dictionary than its newest blocks were compressed with warns, naming both, and the old blocks stay readable', async (t) => {
  const dir = tempDir('contrail-dict-log-');
  t.after(() => dir.remove());
  const entries = Array.from({ length: 120 }, (_, i) => {
    const timeUs = 1_700_000_000_000_000 + i;
    const did = 'did:plc:dictionarydictionarydict';
    return { timeUs, did, kind: 'commit' as const, collection: 'app.bsky.feed.like', json: Buffer.from(`{"did":"${did}","time_us":${timeUs},"n":${i}}`) };
  });
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 50, dictionary: BUNDLED });
  await store.commit({ entries, revs: new Map() });
  await store.close();

  // The same file with a byte of its content changed: same header, same zstd ID.
  const changed = Buffer.from(BUNDLED);
  changed[changed.length - 100]! ^= 0xff;
  const open = async (dictionary: Buffer) => {
    const lines: Array<{ level: number; msg: string; dictionary?: { zstdId: number; sha256: string }; before?: { sha256: string } }> = [];
    const logger = capturingLogger(lines, 'info');
    const opened = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 50, dictionary, logger });
    return { store: opened, said: lines.filter((line) => /dictionar/i.test(line.msg)) };
  };

  let opened = await open(BUNDLED);
  assert.deepEqual(opened.said, [], 'the same dictionary again: nothing to say');
  await opened.store.close();

  opened = await open(changed);
  store = opened.store;
  assert.deepEqual(texts(readAll(store)), texts(entries), 'the old blocks stay readable');
  assert.equal(opened.said.length, 1, `one line says the dictionary changed: got ${JSON.stringify(opened.said)}`);
  const [line] = opened.said;
  assert.equal(line!.level, 40, 'a warning');
  assert.match(line!.msg, /not the one the buffer's newest blocks were compressed with: new blocks use it; the blocks already stored stay readable/);
  assert.equal(line!.dictionary!.zstdId, 1668247156, 'it names the new dictionary');
  assert.notEqual(line!.dictionary!.sha256, line!.before!.sha256, 'and the one before, which has the same zstd ID and other contents');

  // New blocks with the changed one, then back to the bundled dictionary: said again.
  const later = entries.map((e, i) => ({ ...e, timeUs: e.timeUs + 1_000, json: Buffer.from(`{"later":${i}}`) }));
  await store.commit({ entries: later, revs: new Map() });
  await store.close();
  opened = await open(BUNDLED);
  store = opened.store;
  t.after(() => store.close());
  assert.equal(opened.said.length, 1, 'going back to an earlier dictionary is said too');
  assert.deepEqual(texts(readAll(store)), texts([...entries, ...later]), 'and blocks of both dictionaries stay readable');
});
