/**
 * A resync keeps only the signed commit's rev and MST root, so it reads only the commit: a repo
 * whose record blocks a walk would need are missing from its CAR (walkRecords refuses it with
 * missing_block) still resyncs, to its signed rev and root. What a resync does check still holds:
 * a commit signed with another key is refused.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CarBufferReader } from '@ipld/car';
import type { CID } from 'multiformats/cid';
import { BackfillFailure } from '../src/backfill/index.ts';
import { resyncRepo } from '../src/gateway.ts';
import { IdentityCache, IdentityResolver } from '../src/identity/index.ts';
import { SigningKeys } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { carOf } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { didDocument } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
const LIMITS = { maxBytes: 10_000_000, timeoutMs: 10_000, attempts: 1, backoffMs: 100, maxRetryAfterMs: 1_000, allowPrivateEndpoints: true };

async function bytesOf(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/** alice's repo with three posts; her getRepo CAR served without its record blocks; a PLC naming `signingKey` (hers unless told). */
async function setup(t: TestContext, did: string, signingKey?: string) {
  const alice = await SignedRepo.create(did);
  const posts = [0, 1, 2].map((i) => ({ action: 'create' as const, collection: POST, rkey: `3l${String(i).padStart(11, 'm')}`, record: { $type: POST, text: `post ${i}`, createdAt: '2026-12-01T00:00:00.000Z' } }));
  await alice.commit(1, posts);
  const recordCids = new Set((await alice.listing()).map((line) => line.split('\t')[1]));
  const reader = CarBufferReader.fromBytes(await bytesOf(alice.car()));
  const [root] = reader.getRoots() as CID[];
  const car = carOf([root!], reader.blocks().filter((block) => !recordCids.has(block.cid.toString())));
  const { url: pdsUrl } = await localHttpServer(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' }).end(car));
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), signingKey ?? alice.signingKey, pdsUrl)));
  const dir = tempDir('contrail-resync-commit-only-');
  const cache = new IdentityCache({ path: dir.path, maxEntries: 100 });
  const after = cleanup(t);
  after(() => dir.remove());
  after(() => cache.close());
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true });
  return { alice, resync: () => resyncRepo(did, identity, new SigningKeys(), LIMITS) };
}

test('a resync reads only the signed commit: a CAR without its record blocks still resyncs to the signed rev and MST root', async (t) => {
  const { alice, resync } = await setup(t, 'did:plc:aliceresynccommitonly00000');
  const resynced = await resync();
  assert.equal(resynced.rev, alice.head.rev);
  assert.deepEqual(resynced.data, alice.head.data);
});

test('a resync still refuses a commit not signed with the DID key', async (t) => {
  const other = await SignedRepo.create('did:plc:otherresynccommitonly00000');
  const { resync } = await setup(t, 'did:plc:bobresynccommitonly0000000', other.signingKey);
  await assert.rejects(resync(), (err: unknown) => err instanceof BackfillFailure && err.reason === 'bad_signature');
});
