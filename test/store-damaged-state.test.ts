/**
 * The buffer's `meta`, `partitions` and `dictionaries` tables hold what the events alone cannot
 * give back: the seqs and time_us given out, the upstream cursor, each collection's partition
 * number, the dictionaries blocks were compressed with. LMDB keeps no checksums, so such a value
 * whose bytes changed on disk must stop the start with a clear refusal — the table, the key, what
 * is wrong, and what the operator can do — from the store, `contrail serve` and `contrail inspect`
 * alike (exit 1), leaving the buffer as it was and the data dir's lock free. Before session 18
 * they threw whatever the decoding threw ('Data read, but end of buffer not reached
 * {"name":"MessagePack 0xC1"}'), naming nothing, or started with a value of the wrong kind (a
 * last time_us that is a string), or with a dictionary whose bytes changed, which made every block
 * it compressed read as damaged.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import type { Entry } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess, PROJECT_ROOT } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';
const DICTIONARY = readFileSync(join(PROJECT_ROOT, 'dictionaries/contrail-v1.zstd-dict'));
const BLOCK = 50;

const events: Entry[] = Array.from({ length: 3 * BLOCK + 10 }, (_, i) => {
  const timeUs = 1_700_000_000_000_000 + i * 10;
  const collection = i % 2 === 0 ? 'app.bsky.feed.post' : 'app.bsky.feed.like';
  return { timeUs, did: `did:plc:${String(i % 9).padStart(24, 'd')}`, kind: 'commit', collection, json: Buffer.from(`{"time_us":${timeUs},"n":${i}}`) };
});

interface Damage {
  table: 'meta' | 'partitions' | 'dictionaries';
  key: string | number;
  /** What a bad sector or a stray write did to the stored value's bytes. */
  change(value: Buffer): void;
  what: string;
  /** What the refusal says is wrong with it. */
  reason: RegExp;
}

const damages: Damage[] = [
  { table: 'meta', key: 'lastSeq', change: (v) => void (v[0] = 0xc1), what: 'the last seq given out no longer decodes', reason: /does not decode/ },
  {
    table: 'meta',
    key: 'lastTimeUs',
    // A float64 (0xcb and eight bytes: msgpackr's form of an integer above 2^32) turned into a string of eight characters: it decodes, to the wrong kind of value.
    change: (v) => {
      assert.equal(v[0], 0xcb, 'lastTimeUs is stored as a float64');
      v[0] = 0xa8;
    },
    what: 'the last time_us given out decodes to a string',
    reason: /is not a whole number/,
  },
  { table: 'meta', key: 'upstreamCursor', change: (v) => void (v[0] = 0xc1), what: 'the upstream cursor no longer decodes', reason: /does not decode/ },
  { table: 'partitions', key: 'app.bsky.feed.like', change: (v) => void (v[0] = 0xc1), what: "a collection's partition number reads as something else (0xc1 alone decodes, to an error value)", reason: /is not a partition number/ },
  {
    table: 'partitions',
    key: 'app.bsky.feed.like',
    // A positive fixint (0x02) with a bit flipped: still a number, one no other collection has, so only its place in 1..N gives it away.
    change: (v) => {
      assert.equal(v[0], 0x02, "app.bsky.feed.like is the buffer's second partition");
      v[0] = 0x22;
    },
    what: "a collection's partition number changed to one no collection was given",
    reason: /is partition 34, but the buffer's 2 collections are numbered 1 to 2/,
  },
  {
    table: 'dictionaries',
    key: 1,
    change: (v) => void (v[v.length - 100]! ^= 0x5a),
    what: "a byte of a dictionary's bytes changed",
    reason: /\(zstd ID \d+\) no longer matches its SHA-256/,
  },
  { table: 'dictionaries', key: 1, change: (v) => void (v[0] = 0xc1), what: 'a dictionary no longer decodes', reason: /does not decode/ },
];

/** A closed buffer of sealed blocks (with the bundled dictionary) and a tail, then `damage` done to one of its values in data.mdb. */
async function damagedBuffer(dataDir: string, damage: Damage): Promise<void> {
  const store = new EventStore({ dataDir, hotLogBytes: 0, fsync: false, blockEvents: BLOCK, dictionary: DICTIONARY });
  await store.commit({ entries: events, cursor: { url: 'wss://relay.test', seq: 99 }, revs: new Map() });
  await store.close();
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  try {
    const table = raw.openDB<Buffer, string | number>({ name: damage.table, encoding: 'binary' });
    const stored = table.getBinary(damage.key);
    assert.ok(stored, `the buffer holds ${damage.table} "${damage.key}"`);
    const value = Buffer.from(stored);
    damage.change(value);
    table.putSync(damage.key, value);
  } finally {
    await raw.close();
  }
}

function refusal(damage: Damage, dataDir: string): RegExp {
  const source = `event buffer in ${dataDir} is damaged: ${damage.table} "${damage.key}" ${damage.reason.source}[^\\n]*Move ${dataDir} aside`;
  return new RegExp(source.replaceAll('/', '\\/'));
}

/** Asserts that `open` throws `expected`; a store it opened instead is closed again, so a failing run leaves nothing open. */
async function assertRefused(open: () => EventStore, expected: RegExp): Promise<void> {
  let store: EventStore;
  try {
    store = open();
  } catch (err) {
    assert.match((err as Error).message, expected);
    return;
  }
  await store.close();
  assert.fail(`the store opened the damaged buffer; expected a refusal matching ${expected}`);
}

for (const damage of damages) {
  test(`${damage.what} (${damage.table} "${damage.key}"): the store, contrail serve and contrail inspect refuse the buffer, naming the table, the key and what to do; the buffer is untouched`, { timeout: 120_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-damaged-state-');
    defer(() => dir.remove());
    const dataDir = join(dir.path, 'data');
    await damagedBuffer(dataDir, damage);
    const before = readFileSync(join(dataDir, 'data.mdb'));
    const expected = refusal(damage, dataDir);

    await assertRefused(() => new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: DICTIONARY }), expected);
    // The refused start released the data dir's lock: a second start is refused for the damage again, not as a second contrail.
    await assertRefused(() => new EventStore({ dataDir, hotLogBytes: 0, fsync: false, dictionary: DICTIONARY }), expected);
    await assertRefused(() => new EventStore({ dataDir, hotLogBytes: 0, readOnly: true }), expected);

    for (const command of [
      ['serve', '--upstream', NO_UPSTREAM, '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'],
      ['inspect', '--data-dir', dataDir],
    ]) {
      const contrail = new ContrailProcess(command);
      defer(() => contrail.stop());
      assert.deepEqual(await contrail.exit, { code: 1, signal: null }, `contrail ${command[0]} exits 1:\n${contrail.tail()}`);
      assert.match(contrail.stderr.join('\n'), expected, `contrail ${command[0]} says why on stderr`);
    }
    assert.ok(readFileSync(join(dataDir, 'data.mdb')).equals(before), 'the buffer is untouched');
  });
}
