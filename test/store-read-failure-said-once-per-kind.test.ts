/**
 * The store says a read that fails for another reason than a damaged block (UnreadableBufferError)
 * once per reason, and counts each (contrail_store_unreadable_reads_total). A reason can carry
 * numbers (a position, a value read), so one failure recurring at other places reads as other
 * reasons: keyed by the whole message, each was said again and the set of reasons said grew
 * without bound. Keyed by the reason without its numbers (ReasonsSaid), as the replay workers' are,
 * it is said once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventStore, UnreadableBufferError } from '../src/store/index.ts';
import { BLOCK, BUNDLED_DICTIONARY, writeBufferWithDirectory } from './support/block-stream.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { changeValueFirstByteInPlace } from './support/lmdb-pages.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';

test('two failed reads of the buffer whose reasons differ only by their numbers are said once, each counted', { timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-read-failure-kind-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKeys } = await writeBufferWithDirectory(dataDir, 3);
  const lines: LogLine[] = [];
  const logger = capturingLogger(lines, 'info');
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: BUNDLED_DICTIONARY, logger });
  defer(() => store.close());
  const said = () => lines.filter((line) => line.level >= 50 && /the buffer could not be read/.test(line.msg));

  // The first two blocks' directory entries, each begun by another small integer: each decodes to its
  // number with bytes left over, which the decoder refuses, naming the number.
  assert.ok(changeValueFirstByteInPlace(dataDir, pageSize, directoryKeys[0]!, 5) > 0, "the first block's entry is changed");
  assert.ok(changeValueFirstByteInPlace(dataDir, pageSize, directoryKeys[1]!, 6) > 0, "the second block's entry is changed");
  const first = catchUnreadable(() => store.oldest());
  const second = catchUnreadable(() => store.atSeq(BLOCK + 5));
  assert.notEqual(String(first.cause), String(second.cause), 'the two reasons differ');
  assert.equal(String(first.cause).replace(/\d+/g, '#'), String(second.cause).replace(/\d+/g, '#'), 'but only by their numbers');

  assert.equal(said().length, 1, `said once: ${JSON.stringify(said())}`);
  assert.equal(store.unreadableReads, 2, 'each counted');
});

function catchUnreadable(read: () => unknown): UnreadableBufferError {
  try {
    read();
  } catch (err) {
    if (err instanceof UnreadableBufferError) return err;
    throw err;
  }
  assert.fail('the read failed');
}
