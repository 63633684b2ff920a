/**
 * The verify stage's MST node codec (src/verify/node-cbor.ts) against @atcute/cbor, the generic
 * DAG-CBOR codec it stands in for: on random nodes it writes the same bytes and reads the same
 * fields; on those bytes with one byte changed, whatever it reads the generic codec reads the
 * same (the rest it leaves to the generic codec), and decodeNode accepts exactly the nodes
 * @atcute/mst's MSTNode.deserialize accepts, with the same keys.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CidLinkWrapper, decode, encode, fromBytes, isBytes, toBytes } from '@atcute/cbor';
import { MSTNode } from '@atcute/mst';
import { decodeNode, KeyHeights } from '../src/verify/mst-node.ts';
import { readStoredNode, writeStoredNode, type StoredNode } from '../src/verify/node-cbor.ts';
import { mulberry32 } from './support/synthetic.ts';

const random = mulberry32(23);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const KEY_CHARS = [...'abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ0189.:_~-'];

function randomCid(): CidLinkWrapper {
  const bytes = new Uint8Array(36).map(() => Math.floor(random() * 256));
  bytes.set([0x01, random() < 0.8 ? 0x71 : 0x55, 0x12, 0x20]);
  return new CidLinkWrapper(bytes);
}

/** Sorted, distinct keys sharing prefixes, some long (two-byte lengths), a node's worth or more. */
function randomNode(): { keys: string[]; values: CidLinkWrapper[]; subtrees: (CidLinkWrapper | null)[] } {
  const count = pick([0, 1, 2, 4, 7, 30]);
  const collection = pick(['app.bsky.feed.post', 'app.bsky.feed.like', 'com.example.x']);
  const keys = new Set<string>();
  while (keys.size < count) {
    const length = random() < 0.1 ? 200 + Math.floor(random() * 300) : 1 + Math.floor(random() * 14);
    keys.add(`${random() < 0.8 ? collection : pick(KEY_CHARS)}/${Array.from({ length }, () => pick(KEY_CHARS)).join('')}`);
  }
  const sorted = [...keys].sort();
  return {
    keys: sorted,
    values: sorted.map(randomCid),
    subtrees: [null, ...sorted].map(() => (random() < 0.4 ? randomCid() : null)),
  };
}

/** The node as the generic codec encodes it: `{e: [{k, p, t, v}], l}`, keys prefix-compressed. */
function genericForm(keys: string[], values: CidLinkWrapper[], subtrees: (CidLinkWrapper | null)[]) {
  let previous = '';
  const e = keys.map((key, i) => {
    let p = 0;
    while (p < previous.length && previous[p] === key[p]) p++;
    previous = key;
    return { k: toBytes(Buffer.from(key.slice(p))), p, t: subtrees[i + 1], v: values[i] };
  });
  return { e, l: subtrees[0] };
}

/** What the generic decoder reads, in the reader's form (bytes unwrapped). */
function genericRead(bytes: Uint8Array): StoredNode | undefined {
  let data: { e: { k: unknown; p: number; t: CidLinkWrapper | null; v: CidLinkWrapper }[]; l: CidLinkWrapper | null };
  try {
    data = decode(bytes);
  } catch {
    return undefined;
  }
  if (!Array.isArray(data?.e) || data.e.some((entry) => !isBytes(entry?.k))) return undefined;
  return { l: data.l, e: data.e.map(({ k, p, t, v }) => ({ p, k: fromBytes(k as Parameters<typeof fromBytes>[0]), v, t })) };
}

/** Comparable form: CIDs and bytes as hex, anything else as it is. */
function plain(node: StoredNode | undefined): unknown {
  if (node === undefined) return undefined;
  const hex = (value: unknown) => (value instanceof CidLinkWrapper ? Buffer.from(value.bytes).toString('hex') : value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value);
  return { l: hex(node.l), e: node.e.map(({ p, k, v, t }) => ({ p, k: hex(k), v: hex(v), t: hex(t) })) };
}

/** decodeNode's answer: the keys, or that it threw. */
function decoded(bytes: Uint8Array, heights: KeyHeights): string[] | 'malformed' {
  try {
    return [...decodeNode(bytes, heights).keys];
  } catch {
    return 'malformed';
  }
}

/** @atcute/mst's answer. */
async function deserialized(bytes: Uint8Array): Promise<string[] | 'malformed'> {
  try {
    return [...(await MSTNode.deserialize(bytes)).keys];
  } catch {
    return 'malformed';
  }
}

test('writes the bytes @atcute/cbor writes and reads the fields it reads, on random nodes', () => {
  for (let trial = 0; trial < 400; trial++) {
    const { keys, values, subtrees } = randomNode();
    const expected = encode(genericForm(keys, values, subtrees));
    const written = writeStoredNode(keys, values, subtrees);
    assert.equal(Buffer.from(written).toString('hex'), Buffer.from(expected).toString('hex'), `trial ${trial}: ${keys.length} keys`);
    assert.deepEqual(plain(readStoredNode(expected)), plain(genericRead(expected)), `trial ${trial}: read`);
  }
});

test('on bytes with one byte changed, reads only what @atcute/cbor reads the same; decodeNode accepts what @atcute/mst accepts', async () => {
  const heights = new KeyHeights();
  let readHere = 0;
  let leftToGeneric = 0;
  let accepted = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const { keys, values, subtrees } = randomNode();
    const bytes = Uint8Array.from(writeStoredNode(keys, values, subtrees));
    const at = Math.floor(random() * bytes.length);
    bytes[at] = random() < 0.5 ? Math.floor(random() * 256) : bytes[at]! ^ (1 << Math.floor(random() * 8));
    const mutated = random() < 0.1 ? bytes.subarray(0, at) : bytes;
    const read = readStoredNode(mutated);
    if (read) {
      readHere++;
      assert.deepEqual(plain(read), plain(genericRead(mutated)), `trial ${trial}: byte ${at} changed`);
    } else {
      leftToGeneric++;
    }
    const answer = decoded(mutated, heights);
    assert.deepEqual(answer, await deserialized(mutated), `trial ${trial}: byte ${at} changed, decodeNode`);
    if (answer !== 'malformed') accepted++;
  }
  assert.ok(readHere > 100 && leftToGeneric > 100 && accepted > 100, `every path taken (${readHere} read here, ${leftToGeneric} left to the generic codec, ${accepted} accepted)`);
});

test('a node with a field besides e and l, legal DAG-CBOR, is left to the generic codec and read as @atcute/mst reads it', async () => {
  const keys = ['app.bsky.feed.post/3laaaa'];
  const bytes = encode({ ...genericForm(keys, [randomCid()], [null, randomCid()]), x: 1 });
  assert.equal(readStoredNode(bytes), undefined);
  assert.deepEqual(await deserialized(bytes), keys);
  assert.deepEqual(decoded(bytes, new KeyHeights()), keys);
});

test('a prefix length written in a longer form than needed is refused, as the generic codec refuses it', () => {
  const bytes = Uint8Array.from(writeStoredNode(['app.bsky.feed.post/3laaaa', 'app.bsky.feed.post/3lbbbb'], [randomCid(), randomCid()], [null, null, null]));
  const shared = 'app.bsky.feed.post/3l'.length;
  const p = Buffer.from(bytes).indexOf(Buffer.from([0x61, 0x70, shared])); // "p": 21, in its one-byte form
  assert.ok(p > 0);
  const longer = Buffer.concat([bytes.subarray(0, p + 2), Buffer.from([0x18, shared]), bytes.subarray(p + 3)]);
  assert.equal(readStoredNode(longer), undefined);
  assert.throws(() => decode(longer), /non-canonical/);
  assert.throws(() => decodeNode(longer, new KeyHeights()), /non-canonical/);
});
