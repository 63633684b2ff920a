/**
 * A resync keeps only the repo's signed commit (its rev and MST root, which the next commit must
 * chain from), so it fetches only that: com.atproto.sync.getLatestCommit names the commit's CID and
 * com.atproto.sync.getBlocks sends that one block. It fetched the whole repo (getRepo) and hashed
 * every block of it to keep the one: against the real PDS, for a repo of 10,000 posts, 2.6 MB and
 * 1.7 s where the commit alone is 335 bytes and 17 ms (README: Verification). What a resync checks
 * still holds: the block must be the one named, and signed with the DID's key. A PDS that does not
 * implement either method (it answers 501 MethodNotImplemented, as PDSes in the wild have for
 * getLatestCommit) is resynced from the root of its getRepo export instead, within the same byte
 * limit and the same checks.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CID } from 'multiformats/cid';
import { BackfillFailure } from '../src/backfill/index.ts';
import { resyncRepo } from '../src/gateway.ts';
import { IdentityCache, IdentityResolver } from '../src/identity/index.ts';
import { SigningKeys } from '../src/verify/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';
import { answerSync, syncMethodOf } from './support/repo-host.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { didDocument } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';
const LIMITS = { maxBytes: 10_000_000, timeoutMs: 10_000, attempts: 1, backoffMs: 100, maxRetryAfterMs: 1_000, allowPrivateEndpoints: true };

const posts = (from: number) =>
  [0, 1, 2].map((i) => ({ action: 'create' as const, collection: POST, rkey: `3l${String(from + i).padStart(11, 'm')}`, record: { $type: POST, text: `post ${from + i}`, createdAt: '2026-12-01T00:00:00.000Z' } }));

/**
 * alice's repo with six posts in two commits; her PDS (the methods asked for recorded), whose
 * getBlocks sends her MST root's block whatever it is asked for if `sendsMstRoot`, before whose
 * first `commitsBetween` getBlocks answers she commits again, and which answers the methods it
 * `lacks` as a PDS answers a method it does not implement (501 MethodNotImplemented); a PLC
 * naming `signingKey` (hers unless told).
 */
async function setup(t: TestContext, did: string, options: { signingKey?: string; sendsMstRoot?: true; commitsBetween?: number; lacks?: string[] } = {}) {
  const alice = await SignedRepo.create(did);
  await alice.commit(1, posts(0));
  await alice.commit(2, posts(3));
  const methods: string[] = [];
  let commitsBetween = options.commitsBetween ?? 0;
  const { url: pdsUrl } = await localHttpServer(t, (req, res) => {
    methods.push(syncMethodOf(req));
    if (options.lacks?.includes(syncMethodOf(req))) {
      res.writeHead(501, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'MethodNotImplemented', message: 'Method Not Implemented' }));
      return;
    }
    if (options.sendsMstRoot && syncMethodOf(req) === 'com.atproto.sync.getBlocks') {
      void alice.blocks([CID.decode(alice.head.data).toString()]).then((car) => res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' }).end(car));
      return;
    }
    void (async () => {
      if (syncMethodOf(req) === 'com.atproto.sync.getBlocks' && commitsBetween > 0) {
        commitsBetween--;
        await alice.commit(3, posts(6 + 3 * commitsBetween));
      }
      await answerSync(req, res, (asked) => (asked === did ? alice : undefined));
    })();
  });
  const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), options.signingKey ?? alice.signingKey, pdsUrl)));
  const dir = tempDir('contrail-resync-commit-only-');
  const cache = new IdentityCache({ path: dir.path, maxEntries: 100 });
  const after = cleanup(t);
  after(() => dir.remove());
  after(() => cache.close());
  const identity = new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true });
  return { alice, methods, resync: (limits = LIMITS) => resyncRepo(did, identity, new SigningKeys(), limits) };
}

test('a resync fetches only the signed commit: getLatestCommit, then getBlocks for that one block, never the whole repo', async (t) => {
  const { alice, methods, resync } = await setup(t, 'did:plc:aliceresynccommitonly00000');
  const resynced = await resync();
  assert.equal(resynced.rev, alice.head.rev);
  assert.deepEqual(resynced.data, alice.head.data);
  assert.deepEqual(methods, ['com.atproto.sync.getLatestCommit', 'com.atproto.sync.getBlocks']);
});

test('a resync refuses a getBlocks answer without the commit getLatestCommit named (here another block of the repo)', async (t) => {
  const { resync } = await setup(t, 'did:plc:carolresynccommitonly00000', { sendsMstRoot: true });
  await assert.rejects(resync(), (err: unknown) => err instanceof BackfillFailure && err.reason === 'missing_block');
});

test('a commit landing between getLatestCommit and getBlocks does not fail the resync: it asks for the latest commit again', async (t) => {
  // The PDS drops a commit's block once the next commit replaces it (the real one answers 400
  // InvalidRequest "Could not find cids"), so a repo that writes often can lose that race.
  const { alice, methods, resync } = await setup(t, 'did:plc:daveresynccommitonly000000', { commitsBetween: 2 });
  const resynced = await resync();
  assert.equal(resynced.rev, alice.head.rev);
  assert.deepEqual(resynced.data, alice.head.data);
  assert.equal(methods.filter((method) => method === 'com.atproto.sync.getLatestCommit').length, 3, 'asked again after each commit it lost to');
});

test('a resync still refuses a commit not signed with the DID key', async (t) => {
  const other = await SignedRepo.create('did:plc:otherresynccommitonly00000');
  const { resync } = await setup(t, 'did:plc:bobresynccommitonly0000000', { signingKey: other.signingKey });
  await assert.rejects(resync(), (err: unknown) => err instanceof BackfillFailure && err.reason === 'bad_signature');
});

const GET_REPO = 'com.atproto.sync.getRepo';
const GET_LATEST_COMMIT = 'com.atproto.sync.getLatestCommit';
const GET_BLOCKS = 'com.atproto.sync.getBlocks';

test('a PDS without getLatestCommit, or without getBlocks, is resynced from its getRepo export, asked once, within the byte limit', async (t) => {
  for (const lacks of [[GET_LATEST_COMMIT, GET_BLOCKS], [GET_BLOCKS]]) {
    const { alice, methods, resync } = await setup(t, `did:plc:everesyncgetrepo${lacks.length}000000000`, { lacks });
    const resynced = await resync({ ...LIMITS, attempts: 3 });
    assert.equal(resynced.rev, alice.head.rev, `lacking ${lacks.join(', ')}`);
    assert.deepEqual(resynced.data, alice.head.data);
    assert.deepEqual(methods, lacks.length === 2 ? [GET_LATEST_COMMIT, GET_REPO] : [GET_LATEST_COMMIT, GET_BLOCKS, GET_REPO], 'a method it lacks is not asked again');

    let carBytes = 0;
    for await (const chunk of alice.car()) carBytes += chunk.byteLength;
    const tooSmall = { ...LIMITS, maxBytes: carBytes >> 1 };
    await assert.rejects(resync(tooSmall), (err: unknown) => err instanceof BackfillFailure && err.reason === 'too_large', 'an export over --verify-resync-max-bytes fails');
  }
});

test('a resync from getRepo still refuses a commit not signed with the DID key', async (t) => {
  const other = await SignedRepo.create('did:plc:otherresyncgetrepo00000000');
  const { resync } = await setup(t, 'did:plc:malloryresyncgetrepo000000', { signingKey: other.signingKey, lacks: [GET_LATEST_COMMIT] });
  await assert.rejects(resync(), (err: unknown) => err instanceof BackfillFailure && err.reason === 'bad_signature');
});
