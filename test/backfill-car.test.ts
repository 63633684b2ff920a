/**
 * The backfill's repo reader: real getRepo CARs read as streams, the MST walk checked against the
 * atproto interop vectors, and broken CARs (truncated, a missing block, bytes not matching their
 * CID, a cycle) each ending with a reason.
 */
import assert from 'node:assert/strict';
import { createReadStream, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CarReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { MemoryBlockStore, NodeStore, NodeWrangler, getKeyHeight } from '@atcute/mst';
import { CID } from 'multiformats/cid';
import { Secp256k1PrivateKey } from '@atcute/crypto';
import { BackfillFailure, commitSignatureCheck, readRepoCar } from '../src/backfill/index.ts';
import { SigningKeys } from '../src/verify/index.ts';
import { BLOCK_OVERHEAD_BYTES, mstEntries } from '../src/backfill/repo-car.ts';
import { fixturePath, readJsonFixture } from './support/fixtures.ts';
import { backfillFailureOf } from './support/backfill-failure.ts';
import { carOf, cborBlock, type Block } from './support/frames.ts';

const CARS = new URL('./fixtures/cars/', import.meta.url);
/** Far above the fixture repos: the limit is not what these tests are about. */
const MAX_BYTES = 64 * 1024 * 1024;
const REPOS = [
  { file: 'repo-jetstream', did: 'did:plc:53iucmf5ldftgqyf2ac7hmhd', rev: '3migo7fijwi2k', records: 23 },
  { file: 'repo-tiny', did: 'did:plc:7hptvnhdyeu53xp6rz7e42iy', rev: '3lscuqc52or2x', records: 8 },
] as const;

function expectedListing(file: string): string[] {
  return readFileSync(new URL(`${file}.expected-records.tsv`, CARS), 'utf8').trim().split('\n');
}

/** The CAR as a stream of small chunks, so blocks straddle chunk boundaries. */
function streamOf(file: string) {
  return createReadStream(new URL(`${file}.car`, CARS), { highWaterMark: 97 });
}

async function* chunksOf(bytes: Uint8Array, size = 101): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function blocksOf(file: string): Promise<{ root: CID; blocks: Block[] }> {
  const reader = await CarReader.fromBytes(readFileSync(new URL(`${file}.car`, CARS)));
  const [root] = await reader.getRoots();
  assert.ok(root, `${file}.car names a root`);
  const blocks: Block[] = [];
  for await (const block of reader.blocks()) blocks.push(block);
  return { root, blocks };
}

describe('real repo exports', () => {
  for (const repo of REPOS) {
    test(`${repo.file}.car: every record of the expected listing, with its CID, at the commit's rev`, async () => {
      const snapshot = await readRepoCar(streamOf(repo.file), repo.did, MAX_BYTES);
      assert.equal(snapshot.rev, repo.rev);
      assert.equal(snapshot.skipped, 0);
      assert.equal(snapshot.records.length, repo.records);
      const listing = snapshot.records.map((r) => `${r.collection}/${r.rkey}\t${r.cid}`);
      assert.deepEqual(listing, expectedListing(repo.file));
      for (const record of snapshot.records) assert.equal(JSON.parse(record.json).$type, record.collection);
    });
  }

  test('a CAR for another DID than the one asked for is refused', async () => {
    const failure = await backfillFailureOf(readRepoCar(streamOf('repo-tiny'), 'did:plc:53iucmf5ldftgqyf2ac7hmhd', MAX_BYTES));
    assert.equal(failure.reason, 'bad_commit');
    assert.match(failure.message, /did:plc:7hptvnhdyeu53xp6rz7e42iy/);
  });

  test('the commit check (signature, with --verify) runs on the commit and can refuse it', async () => {
    let checked: string | undefined;
    const snapshot = await readRepoCar(streamOf('repo-tiny'), REPOS[1].did, MAX_BYTES, async (commit) => {
      checked = `${commit.did} ${commit.rev} ${commit.sig.length}`;
    });
    assert.equal(checked, `${REPOS[1].did} ${snapshot.rev} 64`);
    const failure = await backfillFailureOf(
      readRepoCar(streamOf('repo-tiny'), REPOS[1].did, MAX_BYTES, async () => {
        throw new BackfillFailure('bad_signature', 'the commit signature does not match the signing key');
      }),
    );
    assert.equal(failure.reason, 'bad_signature');
  });
});

describe('the commit signature (with --verify)', () => {
  type FixtureKey = { privateKeyBytesHex: string; publicDidKey: string };
  // The fixture holds five keys.
  const [owner, stranger] = readJsonFixture<[FixtureKey, FixtureKey, ...FixtureKey[]]>('atproto-interop-tests/crypto/w3c_didkey_K256.json');

  /** repo-jetstream.car with its commit signed again by `owner` (so the CAR's root changes). */
  async function signedCar(): Promise<Uint8Array> {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const { sig: _old, ...unsigned } = dagCbor.decode(blocks.find((b) => b.cid.equals(root))!.bytes) as Record<string, unknown>;
    const key = await Secp256k1PrivateKey.importRaw(Buffer.from(owner.privateKeyBytesHex, 'hex'));
    const commit = cborBlock({ ...unsigned, sig: await key.sign(dagCbor.encode(unsigned)) });
    return carOf([commit.cid], [commit, ...blocks.filter((b) => !b.cid.equals(root))]);
  }

  test("a commit signed with the repo's key passes; another key is bad_signature; a rotated key is fetched again", async () => {
    const car = await signedCar();
    const { did } = REPOS[0];
    const signingKeys = new SigningKeys();
    const noRefresh = async () => {
      throw new Error('not fetched again when the cached key verifies');
    };
    assert.equal((await readRepoCar(chunksOf(car), did, MAX_BYTES, commitSignatureCheck(signingKeys, owner.publicDidKey, noRefresh))).records.length, 23);
    const refusedBy = async (cached: string | undefined, fresh: string | undefined) =>
      backfillFailureOf(readRepoCar(chunksOf(car), did, MAX_BYTES, commitSignatureCheck(signingKeys, cached, async () => fresh)));
    assert.equal((await refusedBy(stranger.publicDidKey, stranger.publicDidKey)).reason, 'bad_signature');
    assert.equal((await refusedBy(undefined, undefined)).reason, 'bad_signature');
    // The cached key is stale (the repo rotated to `owner`): the fresh DID document's key passes.
    let refreshed = 0;
    const rotated = commitSignatureCheck(signingKeys, stranger.publicDidKey, async () => (refreshed++, owner.publicDidKey));
    assert.equal((await readRepoCar(chunksOf(car), did, MAX_BYTES, rotated)).records.length, 23);
    assert.equal(refreshed, 1);
  });
});

describe('MST walk against the atproto interop vectors', () => {
  test('key heights (mst/key_heights.json) as the walker checks them', async () => {
    const vectors = readJsonFixture<Array<{ key: string; height: number }>>('atproto-interop-tests/mst/key_heights.json');
    for (const { key, height } of vectors) assert.equal(await getKeyHeight(key), height, key);
  });

  const PROOFS = 'atproto-interop-tests/firehose/commit-proof-fixtures.json';
  test('commit-proof fixtures: the trees built from their keys have their roots, and the walk lists exactly those keys', async () => {
    const fixtures = readJsonFixture<
      Array<{ comment: string; leafValue: string; keys: string[]; adds: string[]; dels: string[]; rootBeforeCommit: string; rootAfterCommit: string }>
    >(PROOFS);
    for (const fixture of fixtures) {
      const store = new MemoryBlockStore();
      const wrangler = new NodeWrangler(new NodeStore(store));
      const value = { $link: fixture.leafValue };
      let root: string | null = null;
      for (const key of fixture.keys) root = await wrangler.putRecord(root, key, value);
      assert.equal(root, fixture.rootBeforeCommit, `${fixture.comment}: root before`);
      await assertWalk(store, root!, fixture.keys, fixture.leafValue, fixture.comment);
      for (const key of fixture.adds) root = await wrangler.putRecord(root, key, value);
      for (const key of fixture.dels) root = await wrangler.deleteRecord(root, key);
      assert.equal(root, fixture.rootAfterCommit, `${fixture.comment}: root after`);
      const after = [...fixture.keys, ...fixture.adds].filter((key) => !fixture.dels.includes(key));
      await assertWalk(store, root!, after, fixture.leafValue, fixture.comment);
    }
  });

  test('mst/example_keys.txt: a tree of all of them walks back in sorted order', async () => {
    const keys = readFileSync(fixturePath('atproto-interop-tests/mst/example_keys.txt'), 'utf8').trim().split('\n');
    const store = new MemoryBlockStore();
    const wrangler = new NodeWrangler(new NodeStore(store));
    const value = { $link: cborBlock({ n: 1 }).cid.toString() };
    let root: string | null = null;
    for (const key of [...keys].reverse()) root = await wrangler.putRecord(root, key, value);
    await assertWalk(store, root!, keys, value.$link, 'example keys');
  });

  async function assertWalk(store: MemoryBlockStore, root: string, keys: string[], value: string, what: string) {
    const walked: Array<[string, string]> = [];
    for await (const entry of mstEntries(store.blocks, root)) walked.push(entry);
    assert.deepEqual(
      walked,
      [...keys].sort().map((key) => [key, value]),
      what,
    );
  }
});

describe('broken CARs end with a reason', () => {
  const { did } = REPOS[0];

  test('truncated anywhere: bad_car (or a missing block when the cut falls between blocks)', async () => {
    const bytes = readFileSync(new URL('repo-jetstream.car', CARS));
    for (let length = 0; length < bytes.length; length += 37) {
      const failure = await backfillFailureOf(readRepoCar(chunksOf(bytes.subarray(0, length)), did, MAX_BYTES));
      assert.ok(['bad_car', 'missing_block'].includes(failure.reason), `cut at ${length}: ${failure.reason} ${failure.message}`);
    }
  });

  test('a record block missing: missing_block naming the record', async () => {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const [path = '', cid] = expectedListing('repo-jetstream')[5]!.split('\t');
    const failure = await backfillFailureOf(readRepoCar(chunksOf(carOf([root], blocks.filter((b) => b.cid.toString() !== cid))), did, MAX_BYTES));
    assert.equal(failure.reason, 'missing_block');
    assert.match(failure.message, new RegExp(path));
  });

  test('an MST node missing: missing_block', async () => {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const commit = dagCbor.decode(blocks.find((b) => b.cid.equals(root))!.bytes) as { data: CID };
    const failure = await backfillFailureOf(readRepoCar(chunksOf(carOf([root], blocks.filter((b) => !b.cid.equals(commit.data)))), did, MAX_BYTES));
    assert.equal(failure.reason, 'missing_block');
  });

  test('the commit missing: missing_block', async () => {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const failure = await backfillFailureOf(readRepoCar(chunksOf(carOf([root], blocks.filter((b) => !b.cid.equals(root)))), did, MAX_BYTES));
    assert.equal(failure.reason, 'missing_block');
  });

  test('a block whose bytes do not hash to its CID: cid_mismatch', async () => {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const tampered = blocks.map((block, i) => (i === 7 ? { cid: block.cid, bytes: Uint8Array.from(block.bytes, (b, j) => (j === 10 ? b ^ 1 : b)) } : block));
    const failure = await backfillFailureOf(readRepoCar(chunksOf(carOf([root], tampered)), did, MAX_BYTES));
    assert.equal(failure.reason, 'cid_mismatch');
    assert.match(failure.message, new RegExp(blocks[7]!.cid.toString()));
  });

  test('a cycle cannot hash correctly (cid_mismatch), and the walk alone stops on one (bad_mst)', async () => {
    // A keyless MST node whose left subtree is itself: its bytes cannot contain their own hash,
    // so the node is stored under a CID it does not hash to.
    const { root, blocks } = await blocksOf('repo-jetstream');
    const commit = dagCbor.decode(blocks.find((b) => b.cid.equals(root))!.bytes) as Record<string, unknown> & { data: CID };
    const loop = { cid: commit.data, bytes: dagCbor.encode({ e: [], l: commit.data }) };
    const cyclic = blocks.map((block) => (block.cid.equals(commit.data) ? loop : block));
    const failure = await backfillFailureOf(readRepoCar(chunksOf(carOf([root], cyclic)), did, MAX_BYTES));
    assert.equal(failure.reason, 'cid_mismatch');

    // Past the hash check (as if it had been skipped), the walk itself ends the loop.
    const map = new Map(cyclic.map((b) => [b.cid.toString(), b.bytes as Uint8Array<ArrayBuffer>]));
    const walk = (async () => {
      for await (const entry of mstEntries(map, commit.data.toString())) void entry;
    })();
    assert.equal((await backfillFailureOf(walk)).reason, 'bad_mst');
  });

  test('not a CAR at all, and a CAR with two roots: bad_car', async () => {
    assert.equal((await backfillFailureOf(readRepoCar(chunksOf(Buffer.from('<html>502 Bad Gateway</html>')), did, MAX_BYTES))).reason, 'bad_car');
    const { root, blocks } = await blocksOf('repo-jetstream');
    assert.equal((await backfillFailureOf(readRepoCar(chunksOf(carOf([root, root], blocks)), did, MAX_BYTES))).reason, 'bad_car');
  });
});

describe('the byte limit counts what holding each block costs', () => {
  const { did } = REPOS[0];

  test('a CAR of many tiny blocks under the limit in bytes: too_large, since each block is held at its overhead too', async () => {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const padding = Array.from({ length: 2_000 }, (_, i) => cborBlock(i));
    const car = carOf([root], [...blocks, ...padding]);
    const limit = car.length * 2; // twice the CAR's bytes, yet under 2,000 × BLOCK_OVERHEAD_BYTES more
    assert.ok(padding.length * BLOCK_OVERHEAD_BYTES > limit);
    const failure = await backfillFailureOf(readRepoCar(chunksOf(car, 4096), did, limit));
    assert.equal(failure.reason, 'too_large');
    assert.match(failure.message, new RegExp(`limit of ${limit} bytes`));
  });

  test('the real repo passes at its CIDs, bytes and per-block overhead, and not one byte under', async () => {
    const { root, blocks } = await blocksOf('repo-jetstream');
    const counted = blocks.reduce((sum, block) => sum + block.cid.bytes.length + block.bytes.length + BLOCK_OVERHEAD_BYTES, 0);
    const car = carOf([root], blocks);
    assert.equal((await readRepoCar(chunksOf(car), did, counted)).records.length, REPOS[0].records);
    assert.equal((await backfillFailureOf(readRepoCar(chunksOf(car), did, counted - 1))).reason, 'too_large');
  });
});
