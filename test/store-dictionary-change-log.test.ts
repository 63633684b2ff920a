/**
 * Issue #10, "Bad input and failure": "a dictionary file that changed … gets a clear log line and
 * a defined outcome — tested". The outcome (old blocks stay readable, the buffer keeps every
 * dictionary it used) is tested in store-bad-input.test.ts; the log line is not, and the store
 * writes none: an operator whose --zstd-dictionary file changed (or was replaced by another under
 * the same zstd ID) is told nothing at start.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';
import { readAll, texts } from './support/store-reads.ts';

const BUNDLED = readFileSync(fileURLToPath(new URL('../dictionaries/contrail-v1.zstd-dict', import.meta.url)));

test('opening a buffer with another dictionary than its blocks were compressed with says so in the log, and the old blocks stay readable', async (t) => {
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
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, blockEvents: 50, dictionary: changed, logger });
  t.after(() => store.close());
  assert.deepEqual(texts(readAll(store)), texts(entries), 'the old blocks stay readable');
  assert.ok(
    lines.some((line) => line.level >= 30 && /dictionar/i.test(line.msg)),
    `a log line says the dictionary changed (new blocks use the new one, old ones keep theirs): got ${JSON.stringify(lines.map((l) => l.msg))}`,
  );
});
