/**
 * The verification stage: the sync 1.1 inversion against the interop commit-proof vectors,
 * signatures against the interop signature vectors, real commits written and signed by
 * @atproto/repo (the reference implementation the PDS runs) checked in both modes and rejected
 * when tampered with, and the Verifier pipeline — ordering, holding while a key is resolved,
 * key rotation, out-of-sync until a valid #sync, byte bounds — against a DID directory served
 * on 127.0.0.1 and the identity stage's real LMDB cache.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { describe, test, type TestContext } from 'node:test';
import { CidLinkWrapper } from '@atcute/cid';
import { MemoryBlockStore, NodeStore, NodeWrangler, getKeyHeight } from '@atcute/mst';
import { Secp256k1Keypair } from '@atproto/crypto';
import { CID } from 'multiformats/cid';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Link } from '../src/atproto/index.ts';
import { IdentityResolver } from '../src/identity/index.ts';
import { CarSlice, decodeFrame, parseMessage, type UpstreamMessage } from '../src/upstream/index.ts';
import { CheckPool, createVerifyMetrics, Verifier, type VerifyFailure } from '../src/verify/index.ts';
import { tidMicros } from '../src/atproto/index.ts';
import { checkCommit, checkSync, passed } from '../src/verify/check.ts';
import { VerifyError } from '../src/verify/failure.ts';
import { checkInversion } from '../src/verify/inversion.ts';
import { KeyHeights } from '../src/verify/mst-node.ts';
import { SigningKeys } from '../src/verify/signing-keys.ts';
import { cleanup } from './support/cleanup.ts';
import { seriesValue } from './support/exposition.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { readJsonFixture } from './support/fixtures.ts';
import { Gate, localHttpServer } from './support/local-http.ts';
import { accountFrame, carOf, identityFrame } from './support/frames.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { Subscription, httpGet, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { SignedRepo, commitFrameOf, syncFrameOf, type CommitBody, type Write } from './support/signed-repo.ts';
import { answerSync, syncMethodOf } from './support/repo-host.ts';
import { didDocument, identityCacheUnderTest, identityEventOf, resyncWithoutPds, verifierUnderTest } from './support/verifier-harness.ts';
import { withBadSignature, withMissingProofNode, withWrongPrevData, withWrongRev, withoutPrev } from './support/tamper.mjs';

const fixture = <T>(name: string): T => readJsonFixture<T>(`atproto-interop-tests/${name}`);

const message = <T extends UpstreamMessage['type']>(bytes: Uint8Array) => parseMessage(decodeFrame(bytes, 10_000_000)) as Extract<UpstreamMessage, { type: T }>;
const commitOf = (body: CommitBody) => message<'commit'>(commitFrameOf(body));

async function failureOf(check: Promise<unknown>): Promise<VerifyFailure | 'passed'> {
  try {
    await check;
    return 'passed';
  } catch (err) {
    if (err instanceof VerifyError) return err.reason;
    throw err;
  }
}

const POST = 'app.bsky.feed.post';
let rkeyCounter = 0;
const post = (text: string): Write => ({ action: 'create', collection: POST, rkey: `3l${String(rkeyCounter++).padStart(11, 'a')}`, record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });

describe('MST (interop vectors)', () => {
  test('key heights', async () => {
    const heights = new KeyHeights();
    for (const { key, height } of fixture<{ key: string; height: number }[]>('mst/key_heights.json')) {
      assert.equal(await getKeyHeight(key), height, key);
      assert.equal(heights.of(key), height, `${key} (proof tree)`);
    }
  });

  test('commit proofs: the ops undone on the proof blocks alone lead from rootAfterCommit to rootBeforeCommit', async () => {
    type ProofFixture = { comment: string; leafValue: string; keys: string[]; adds: string[]; dels: string[]; rootBeforeCommit: string; rootAfterCommit: string; blocksInProof: string[] };
    for (const vector of fixture<ProofFixture[]>('firehose/commit-proof-fixtures.json')) {
      const blocks = new MemoryBlockStore();
      const wrangler = new NodeWrangler(new NodeStore(blocks));
      const leaf = new CidLinkWrapper(CID.parse(vector.leafValue).bytes);
      let root: string | null = null;
      for (const key of vector.keys) root = await wrangler.putRecord(root, key, leaf);
      assert.equal(root, vector.rootBeforeCommit, `${vector.comment}: the tree before`);
      for (const key of vector.adds) root = await wrangler.putRecord(root, key, leaf);
      for (const key of vector.dels) root = await wrangler.deleteRecord(root, key);
      assert.equal(root, vector.rootAfterCommit, `${vector.comment}: the tree after`);

      const proofBlocks = vector.blocksInProof.map((cid) => ({ cid: CID.parse(cid), bytes: blocks.blocks.get(cid)! }));
      const link = (cid: string) => new Link(CID.parse(cid).bytes);
      const proof = (blocksInCar: typeof proofBlocks, prevData = vector.rootBeforeCommit) => ({
        commit: undefined,
        prevData: link(prevData),
        car: new CarSlice(carOf([CID.parse(vector.rootAfterCommit)], blocksInCar)),
        ops: [
          ...vector.adds.map((path) => ({ action: 'create', path, cid: link(vector.leafValue), prev: undefined })),
          ...vector.dels.map((path) => ({ action: 'delete', path, cid: undefined, prev: link(vector.leafValue) })),
        ],
      });
      const after = new CidLinkWrapper(CID.parse(vector.rootAfterCommit).bytes);
      assert.equal(await failureOf(checkInversion(proof(proofBlocks), after)), 'passed', vector.comment);
      if (proofBlocks.length > 1) {
        assert.equal(await failureOf(checkInversion(proof(proofBlocks.slice(0, -1)), after)), 'bad_inversion', `${vector.comment}: one proof block missing`);
      }
      assert.equal(await failureOf(checkInversion(proof(proofBlocks, vector.rootAfterCommit), after)), 'bad_inversion', `${vector.comment}: wrong prevData`);
    }
  });
});

describe('MST: a repo\'s first commit', () => {
  test('without prevData, undoing its ops must leave the empty tree; any other commit without prevData fails as missing_prev_data', async () => {
    const blocks = new MemoryBlockStore();
    const wrangler = new NodeWrangler(new NodeStore(blocks));
    const leaf = new CidLinkWrapper(CID.parse('bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm').bytes);
    const keys = ['app.bsky.actor.profile/self', 'app.bsky.feed.post/3l2aaaaaaaaaa', 'app.bsky.feed.post/3l2aaaaaaaaab'];
    let root: string | null = null;
    for (const key of keys) root = await wrangler.putRecord(root, key, leaf);
    const car = new CarSlice(carOf([CID.parse(root!)], [...blocks.blocks].map(([cid, bytes]) => ({ cid: CID.parse(cid), bytes }))));
    const create = (path: string) => ({ action: 'create', path, cid: new Link(leaf.bytes), prev: undefined });
    const data = new CidLinkWrapper(CID.parse(root!).bytes);
    const proof = (paths: string[]) => ({ commit: undefined, prevData: undefined, car, ops: paths.map(create) });
    assert.equal(await failureOf(checkInversion(proof(keys), data)), 'passed', 'the first commit creates every record');
    assert.equal(await failureOf(checkInversion(proof(keys.slice(1)), data)), 'missing_prev_data', 'a record was there before: not the first commit');
  });
});

describe('signatures (interop vectors)', () => {
  test('low-S compact signatures verify; high-S and DER-encoded ones do not', async () => {
    const keys = new SigningKeys();
    type SignatureFixture = { comment: string; messageBase64: string; publicKeyDid: string; signatureBase64: string; validSignature: boolean };
    for (const vector of fixture<SignatureFixture[]>('crypto/signature-fixtures.json')) {
      const valid = await keys.verify(vector.publicKeyDid, Buffer.from(vector.signatureBase64, 'base64'), Buffer.from(vector.messageBase64, 'base64'));
      assert.equal(valid, vector.validSignature, vector.comment);
    }
  });
});

describe('real commits (@atproto/repo)', () => {
  test('creates, updates, deletes and multi-op commits pass both modes; #sync passes', async () => {
    const repo = await SignedRepo.create('did:plc:verifyaaaaaaaaaaaaaaaaaaa');
    const keys = new SigningKeys();
    const first = post('one');
    const bodies = [
      await repo.commit(1, [first, post('two'), post('three')]),
      await repo.commit(2, [{ ...first, action: 'update', record: { $type: POST, text: 'one, edited', createdAt: '2026-12-01T00:00:00.000Z' } }]),
      await repo.commit(3, [{ action: 'delete', collection: POST, rkey: first.rkey }, post('four')]),
    ];
    for (const body of bodies) {
      for (const mode of ['signatures', 'full'] as const) {
        assert.equal(await failureOf(checkCommit(commitOf(body), repo.signingKey, mode, keys)), 'passed', `${body.ops.map((o) => o.action)} in ${mode}`);
      }
    }
    assert.equal(await failureOf(checkSync(message<'sync'>(syncFrameOf(await repo.sync(4))), repo.signingKey, keys)), 'passed');
  });

  test('tampered commits are rejected with the reason', async () => {
    const repo = await SignedRepo.create('did:plc:verifybbbbbbbbbbbbbbbbbbb');
    const keys = new SigningKeys();
    const first = post('one');
    await repo.commit(1, [first, post('two')]);
    const update = await repo.commit(2, [{ ...first, action: 'update', record: { $type: POST, text: 'edited', createdAt: '2026-12-01T00:00:00.000Z' } }]);
    const check = async (body: CommitBody, mode: 'signatures' | 'full' = 'full', key = repo.signingKey) => failureOf(checkCommit(commitOf(body), key, mode, keys));
    assert.equal(await check(update), 'passed');
    assert.equal(await check(await withBadSignature(update), 'signatures'), 'bad_signature');
    assert.equal(await check(update, 'signatures', (await Secp256k1Keypair.create()).did()), 'bad_signature', 'another key');
    assert.equal(await check(withWrongRev(update), 'signatures'), 'rev_mismatch');
    assert.equal(await check(withWrongPrevData(update)), 'bad_inversion');
    assert.equal(await check(withWrongPrevData(update), 'signatures'), 'passed', 'signatures mode does not read the proof');
    assert.equal(await check(withMissingProofNode(update)), 'bad_inversion');
    assert.equal(await check(withoutPrev(update)), 'bad_op_prev');
    const [op] = update.ops;
    assert.ok(op?.prev);
    assert.equal(await check({ ...update, ops: [{ ...op, cid: op.prev }] }), 'bad_inversion', 'an op whose cid the tree does not hold');
    const notAKey = { ...update, ops: [{ action: 'delete', path: 'app.bsky.feed.post/not a key', cid: null, prev: op.prev }] };
    await assert.rejects(checkCommit(commitOf(notAKey), repo.signingKey, 'full', keys), /invalid MST key/, 'a path that is no MST key is refused as the library refuses it');
    assert.equal(await check(notAKey), 'bad_inversion');
    assert.equal(await check({ ...update, commit: update.prevData }), 'bad_commit', 'a commit CID whose block is not in the CAR');
    const { prevData, ...withoutPrevData } = update;
    assert.equal(await check(withoutPrevData as CommitBody), 'missing_prev_data');
  });

  test('worker threads give the main thread\'s verdicts; a closed pool refuses, and the Verifier then checks on its own thread', async (t) => {
    const repo = await SignedRepo.create('did:plc:verifyworkers0000000000000');
    const first = post('one');
    const create = await repo.commit(1, [first, post('two')]);
    const update = await repo.commit(2, [{ ...first, action: 'update', record: { $type: POST, text: 'edited', createdAt: '2026-12-01T00:00:00.000Z' } }]);
    const sync = message<'sync'>(syncFrameOf(await repo.sync(3)));
    const cases: [string, CommitBody | typeof sync, 'signatures' | 'full'][] = [
      ['create', create, 'full'],
      ['update', update, 'full'],
      ['forged', await withBadSignature(update), 'signatures'],
      ['rev', withWrongRev(update), 'signatures'],
      ['prevData', withWrongPrevData(update), 'full'],
      ['proof node', withMissingProofNode(update), 'full'],
      ['prev', withoutPrev(update), 'full'],
      ['#sync', sync, 'full'],
    ];
    const pool = new CheckPool(2, pino({ level: 'silent' }));
    t.after(() => pool.close());
    const keys = new SigningKeys();
    const verdicts: string[] = [];
    const hex = (bytes: Uint8Array | undefined) => bytes && Buffer.from(bytes).toString('hex');
    const roots: (string | undefined)[] = [];
    for (const [name, body, mode] of cases) {
      const parsed = 'type' in body ? body : commitOf(body);
      const checking = parsed.type === 'sync' ? checkSync(parsed, repo.signingKey, keys) : checkCommit(parsed, repo.signingKey, mode, keys);
      const here = await failureOf(checking);
      const there = await pool.check(parsed, repo.signingKey, mode);
      assert.equal(there.failure?.reason ?? 'passed', here, name);
      verdicts.push(here);
      // Passed in `full`, the answer carries the signed commit's MST root (the chain's), as read here.
      const root = here === 'passed' ? hex(passed(await checking, mode).data) : undefined;
      assert.equal(hex(there.data), root, `${name}: the MST root in the answer`);
      assert.equal(root === undefined, here !== 'passed' || mode !== 'full', `${name}: a root only when passed in full`);
      roots.push(root);
    }
    assert.equal(roots[0], hex(update.prevData.bytes), 'the first commit\'s root is what the next names as prevData');
    // Asked for in one turn, they reach the worker as one batch, their bytes in one buffer (and their roots in one back).
    const together = await Promise.all(cases.map(([, body, mode]) => pool.check('type' in body ? body : commitOf(body), repo.signingKey, mode)));
    assert.deepEqual(together.map(({ failure }) => failure?.reason ?? 'passed'), verdicts, 'checked in one batch');
    assert.deepEqual(together.map(({ data }) => hex(data)), roots, 'the roots of one batch');
    await pool.close();
    await assert.rejects(pool.check(commitOf(create), repo.signingKey, 'full'), /closed/);
    const plc = await plcDirectory(t);
    plc.publish(repo.did, repo.signingKey);
    const { verifier, seqs } = await pipeline(t, plc.url, { checkPool: pool });
    verifier.handle(commitOf(create)); // held while its key is fetched, then judged
    await waitUntil(() => seqs().length === 1, '() => seqs().length === 1');
    verifier.handle(commitOf(update)); // its check is started ahead, with the cached key
    verifier.handle(commitOf(withWrongPrevData(await repo.commit(4, [post('three')]))));
    await verifier.idle();
    assert.deepEqual(seqs(), [1, 2]);
  });

  test('TID timestamps', () => {
    assert.equal(tidMicros('3jzfcijpj2z2a'), 1688137381887007);
  });
});

/** A DID directory on 127.0.0.1 serving PLC-style documents; its answers can be held back to act as a slow directory. */
async function plcDirectory(t: TestContext) {
  const documents = new Map<string, string>();
  const gate = new Gate();
  const gates = new Map<string, Gate>();
  const pdsUrls = new Map<string, string>();
  const answer = (did: string, res: ServerResponse) => {
    const key = documents.get(did);
    if (!key) return res.writeHead(404).end();
    res.end(didDocument(did, key, pdsUrls.get(did)));
  };
  const { url } = await localHttpServer(t, (req, res) => {
    const did = decodeURIComponent(req.url!.slice(1));
    void Promise.all([gate.passed, gates.get(did)?.passed]).then(() => answer(did, res));
  });
  return {
    url,
    /** Serves the DID's document: its signing key, and its PDS if given. */
    publish: (did: string, key: string, pdsUrl?: string) => {
      documents.set(did, key);
      if (pdsUrl) pdsUrls.set(did, pdsUrl);
    },
    /** Holds every answer (or only those for `did`) until the returned function is called. */
    stall(did?: string): () => void {
      if (!did) return gate.stall();
      const held = new Gate();
      gates.set(did, held);
      return held.stall();
    },
  };
}

async function pipeline(t: TestContext, plcUrl: string, options: Partial<ConstructorParameters<typeof Verifier>[0]> = {}) {
  const cache = identityCacheUnderTest(cleanup(t), 'contrail-verify-');
  const registry = new Registry();
  const delivered: { message: UpstreamMessage; released: boolean }[] = [];
  const outOfSync: string[] = [];
  const verifier = new Verifier({
    mode: 'full',
    identity: new IdentityResolver({ plcUrl, cache, allowPrivateEndpoints: true, failureTtlMs: 0 }),
    logger: pino({ level: 'silent' }),
    metrics: createVerifyMetrics(registry),
    deliver: (message, released) => delivered.push({ message, released }),
    // Nothing to resync from here (the resync test brings a PDS): the repo waits for a #sync.
    resync: resyncWithoutPds(outOfSync),
    ...options,
  });
  const metric = async (name: string, labels = '') => seriesValue(await registry.metrics(), `${name}${labels}`);
  const seqs = () => delivered.map(({ message }) => ('seq' in message ? message.seq : undefined));
  return { verifier, delivered, outOfSync, metric, seqs };
}

// The same behaviour with the checks on this thread and on worker threads.
for (const threads of [0, 2]) {
  describe(threads ? `Verifier, checks on ${threads} worker threads` : 'Verifier, checks on the main thread', () => {
    const verifierOf = async (t: TestContext, plcUrl: string, options: Partial<ConstructorParameters<typeof Verifier>[0]> = {}) => {
      if (!threads) return pipeline(t, plcUrl, options);
      const checkPool = new CheckPool(threads, pino({ level: 'silent' }));
      t.after(() => checkPool.close());
      // Started before the test's waits begin (from source, a worker compiles its modules first).
      await checkPool.ready();
      return pipeline(t, plcUrl, { ...options, checkPool });
    };

    test('known keys: everything passes in order; an unknown key holds only its repo, then releases in order', async (t) => {
      const plc = await plcDirectory(t);
      const alice = await SignedRepo.create('did:plc:alice0000000000000000000');
      const bob = await SignedRepo.create('did:plc:bob000000000000000000000');
      plc.publish(alice.did, alice.signingKey);
      plc.publish(bob.did, bob.signingKey);
      const { verifier, delivered, seqs, metric } = await verifierOf(t, plc.url);

      verifier.handle(commitOf(await alice.commit(1, [post('a1')])));
      await verifier.idle();
      await waitUntil(() => delivered.length === 1, '() => delivered.length === 1');
      assert.deepEqual(delivered[0]!.released, true, 'alice was unknown: held, then released');

      const open = plc.stall();
      verifier.handle(commitOf(await bob.commit(2, [post('b1')]))); // bob unknown: held
      verifier.handle(commitOf(await alice.commit(3, [post('a2')])));
      verifier.handle(commitOf(await bob.commit(4, [post('b2')])));
      verifier.handle(commitOf(await alice.commit(5, [post('a3')])));
      await verifier.idle();
      assert.deepEqual(seqs(), [1, 3, 5], "alice's commits go ahead while bob's key is being fetched");
      assert.equal(verifier.heldBelow(), 2, 'the saved cursor must stay below the held seq');
      open();
      await waitUntil(() => delivered.length === 5, '() => delivered.length === 5');
      assert.deepEqual(seqs(), [1, 3, 5, 2, 4]);
      assert.deepEqual(delivered.slice(3).map((d) => d.released), [true, true]);
      assert.equal(verifier.heldBelow(), undefined);
      assert.equal(await metric('contrail_verify_passed_total', '{type="commit"}'), 5);
    });

    test('a rotated key is followed, announced by #identity or not', async (t) => {
      const plc = await plcDirectory(t);
      const alice = await SignedRepo.create('did:plc:alicerotate00000000000000');
      plc.publish(alice.did, alice.signingKey);
      const { verifier, delivered, metric, outOfSync } = await verifierOf(t, plc.url);
      verifier.handle(commitOf(await alice.commit(1, [post('before')])));
      await waitUntil(() => delivered.length === 1, '() => delivered.length === 1');

      // Rotation announced: the document changes, then #identity, then a commit signed with the new key.
      // The commit comes right behind the #identity, while its refresh is still in flight: it
      // waits for that fetch (counted as a refresh) rather than failing with the old key.
      alice.rotateKey(await Secp256k1Keypair.create());
      plc.publish(alice.did, alice.signingKey);
      const afterRotation = await alice.commit(3, [post('after announced rotation')]);
      verifier.handle(identityEventOf(alice.did, 2));
      verifier.handle(commitOf(afterRotation));
      await waitUntil(() => delivered.length === 3, '() => delivered.length === 3');

      // Rotation not announced: the signature fails with the cached key, the document is fetched again.
      await new Promise((resolve) => setTimeout(resolve, 5)); // the cached document must predate the commit
      alice.rotateKey(await Secp256k1Keypair.create());
      plc.publish(alice.did, alice.signingKey);
      verifier.handle(commitOf(await alice.commit(4, [post('after silent rotation')])));
      await waitUntil(() => delivered.length === 4, '() => delivered.length === 4');
      assert.equal(await metric('contrail_verify_key_refreshes_total'), 2);
      assert.equal(await metric('contrail_verify_failures_total', '{reason="bad_signature"}'), 0);
      assert.deepEqual(outOfSync, []);
    });

    test('a failure goes out of sync: later commits are withheld until a valid #sync', async (t) => {
      const plc = await plcDirectory(t);
      const alice = await SignedRepo.create('did:plc:alicesync000000000000000');
      plc.publish(alice.did, alice.signingKey);
      const { verifier, seqs, metric, outOfSync } = await verifierOf(t, plc.url);
      verifier.handle(commitOf(await alice.commit(1, [post('fine')])));
      verifier.handle(commitOf(withWrongPrevData(await alice.commit(2, [post('tampered')]))));
      verifier.handle(commitOf(await alice.commit(3, [post('valid, but after a gap')])));
      const replay = await alice.commit(4, [post('replayed later')]);
      verifier.handle(message<'sync'>(syncFrameOf(await alice.sync(5))));
      verifier.handle(commitOf(await alice.commit(6, [post('in sync again')])));
      verifier.handle(commitOf({ ...replay, seq: 7 })); // an old commit sent again under a new seq
      verifier.handle(commitOf(await alice.commit(6, [post('a duplicate seq')])));
      await waitUntil(async () => (await metric('contrail_verify_failures_total', '{reason="rev_not_newer"}')) === 1, 'async () => (await metric(\'contrail_verify_failures_total\', \'{reason="rev_not_newer"}\')) === 1');
      assert.deepEqual(seqs(), [1, 5, 6]);
      assert.equal(await metric('contrail_verify_duplicates_total'), 1);
      assert.equal(await metric('contrail_verify_failures_total', '{reason="bad_inversion"}'), 1);
      assert.equal(await metric('contrail_verify_failures_total', '{reason="out_of_sync"}'), 1);
      assert.equal(await metric('contrail_verify_failures_total', '{reason="rev_not_newer"}'), 1);
      assert.deepEqual(outOfSync, [alice.did], 'the resync hook is told once');
      assert.equal(verifier.outOfSync(alice.did), undefined);
    });

    test('held bytes are bounded per repo: what fits is judged, then the repo is out of sync; an unresolvable DID fails as unknown_key', async (t) => {
      const plc = await plcDirectory(t);
      const alice = await SignedRepo.create('did:plc:aliceheld0000000000000000');
      plc.publish(alice.did, alice.signingKey);
      const bodies = [];
      for (let seq = 1; seq <= 5; seq++) bodies.push(await alice.commit(seq, [post(String(seq))]));
      // Room for exactly the first two (each counted as its CAR and 256 bytes for the rest).
      const { verifier, seqs, metric, outOfSync } = await verifierOf(t, plc.url, { maxHeldBytesPerRepo: bodies[0]!.blocks.byteLength + bodies[1]!.blocks.byteLength + 2 * 256 });
      const open = plc.stall();
      for (const body of bodies.slice(0, 4)) verifier.handle(commitOf(body));
      await verifier.idle();
      assert.equal(await metric('contrail_verify_failures_total', '{reason="held_overflow"}'), 1);
      assert.equal(await metric('contrail_verify_failures_total', '{reason="out_of_sync"}'), 1, 'seq 4 came after the overflow');
      open();
      await waitUntil(() => outOfSync.length === 1, '() => outOfSync.length === 1');
      assert.deepEqual(seqs(), [1, 2], 'the commits held before the overflow pass');
      verifier.handle(commitOf(bodies[4]!));
      await waitUntil(async () => (await metric('contrail_verify_failures_total', '{reason="out_of_sync"}')) === 2, 'async () => (await metric(\'contrail_verify_failures_total\', \'{reason="out_of_sync"}\')) === 2');
      assert.deepEqual(seqs(), [1, 2]);

      const stranger = await SignedRepo.create('did:plc:nobodyknowsme000000000000');
      verifier.handle(commitOf(await stranger.commit(6, [post('?')])));
      await waitUntil(async () => (await metric('contrail_verify_failures_total', '{reason="unknown_key"}')) === 1, 'async () => (await metric(\'contrail_verify_failures_total\', \'{reason="unknown_key"}\')) === 1');
    });
  });
}

/** A PDS on 127.0.0.1 answering com.atproto.sync for SignedRepos as the PDS does (repo-host.ts); answers can be held back. */
async function repoHost(t: TestContext) {
  const repos = new Map<string, SignedRepo>();
  const requested: string[] = [];
  const gate = new Gate();
  const { url } = await localHttpServer(t, (req, res) => {
    // A resync begins with getLatestCommit.
    if (syncMethodOf(req) === 'com.atproto.sync.getLatestCommit') requested.push(new URL(req.url!, 'http://pds').searchParams.get('did') ?? '');
    void gate.passed.then(() => answerSync(req, res, (did) => repos.get(did)));
  });
  return {
    url,
    host: (repo: SignedRepo) => repos.set(repo.did, repo),
    /** The DIDs whose latest commit was asked for (one per resync), in order. */
    requested,
    /** Holds every answer until the returned function is called. */
    stall: () => gate.stall(),
  };
}

describe('resync from the PDS (com.atproto.sync.getLatestCommit and getBlocks, through the backfill stage)', () => {
  /** The gateway's resync (resyncRepo) from the PDS the DID documents name: the commit's signature checked with the DID's key. */
  async function resyncing(t: TestContext) {
    const plc = await plcDirectory(t);
    const pds = await repoHost(t);
    const { verifier, delivered, registry } = verifierUnderTest(t, plc.url, { resyncFromPds: true });
    const metric = async (series: string) => seriesValue(await registry.metrics(), series);
    const seqs = () => delivered.map((m) => ('seq' in m ? m.seq : undefined));
    return { plc, pds, verifier, metric, seqs };
  }

  test('a repo out of sync is fetched again: commits held meanwhile that the snapshot holds are dropped, later ones pass', async (t) => {
    const { plc, pds, verifier, metric, seqs } = await resyncing(t);
    const alice = await SignedRepo.create('did:plc:aliceresync00000000000000');
    plc.publish(alice.did, alice.signingKey, pds.url);
    pds.host(alice);
    verifier.handle(commitOf(await alice.commit(1, [post('before')])));
    await waitUntil(() => seqs().length === 1, '() => seqs().length === 1');

    const open = pds.stall();
    verifier.handle(commitOf(withWrongPrevData(await alice.commit(2, [post('tampered')]))));
    verifier.handle(commitOf(await alice.commit(3, [post('in the snapshot')])));
    await verifier.idle();
    assert.equal(verifier.outOfSync(alice.did), 'bad_inversion');
    assert.equal(verifier.heldBelow(), 3, 'held while the resync runs; the saved cursor stays below it');
    open(); // the PDS answers with the repo as it is now: at commit 3
    await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="resynced"}')) === 1, 'async () => (await metric(\'contrail_verify_resyncs_total{result="resynced"}\')) === 1');
    verifier.handle(commitOf(await alice.commit(4, [post('after the snapshot')])));
    await waitUntil(() => seqs().length === 2, '() => seqs().length === 2');
    assert.deepEqual(seqs(), [1, 4]);
    assert.equal(verifier.outOfSync(alice.did), undefined);
    assert.equal(await metric('contrail_verify_failures_total{reason="rev_not_newer"}'), 1, 'commit 3 is in the snapshot');
    assert.equal(await metric('contrail_verify_failures_total{reason="out_of_sync"}'), 0);
    assert.equal(await metric('contrail_verify_out_of_sync_repos'), 0);
  });

  test('a resync that fails leaves the repo out of sync until a valid #sync; the commits held meanwhile are withheld', async (t) => {
    const { plc, pds, verifier, metric, seqs } = await resyncing(t);
    const bob = await SignedRepo.create('did:plc:bobresync0000000000000000');
    plc.publish(bob.did, bob.signingKey, pds.url); // but his PDS does not have the repo
    verifier.handle(commitOf(await bob.commit(1, [post('before')])));
    verifier.handle(commitOf(await withBadSignature(await bob.commit(2, [post('forged')]))));
    verifier.handle(commitOf(await bob.commit(3, [post('withheld')])));
    await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="failed"}')) === 1, 'async () => (await metric(\'contrail_verify_resyncs_total{result="failed"}\')) === 1');
    await waitUntil(async () => (await metric('contrail_verify_failures_total{reason="out_of_sync"}')) === 1, 'async () => (await metric(\'contrail_verify_failures_total{reason="out_of_sync"}\')) === 1');
    verifier.handle(message<'sync'>(syncFrameOf(await bob.sync(4))));
    verifier.handle(commitOf(await bob.commit(5, [post('in sync again')])));
    await waitUntil(() => seqs().length === 3, '() => seqs().length === 3');
    assert.deepEqual(seqs(), [1, 4, 5], 'commit 3 came while the repo was out of sync');
  });
});

describe('gateway with --verify full', () => {
  test('a repo waiting for its key is overtaken by other repos, never reordered within itself; time_us follows emission, so a replay repeats what live clients got', async (t) => {
    // The real PDS's sequence for three new accounts, then their first writes (the e2e suite's
    // "phase one"): each account's #sync is the first message that needs its key.
    const plc = await plcDirectory(t);
    const relay = await FakeRelay.start();
    const dir = tempDir('contrail-verify-order-');
    t.after(async () => {
      await Subscription.closeAll();
      await relay.stop();
      dir.remove();
    });
    const repoNamed = (name: string) => SignedRepo.create(`did:plc:${name}order`.padEnd(32, '0'));
    const [alice, bob, carol] = await Promise.all([repoNamed('alice'), repoNamed('bob'), repoNamed('carol')]);
    for (const repo of [alice, bob, carol]) plc.publish(repo.did, repo.signingKey);
    const openBob = plc.stall(bob.did); // bob's directory entry is slow to come
    const gateway = await startTestGateway(relay.url, dir.path, { verify: 'full', plcUrl: plc.url });
    t.after(() => gateway.stop());
    await relay.waitForConnections(1);

    const upstream: { did: string; label: string; bytes: Uint8Array }[] = [];
    let seq = 0;
    for (const repo of [alice, bob, carol]) {
      upstream.push({ did: repo.did, label: 'identity', bytes: identityFrame({ seq: ++seq, did: repo.did, handle: `${repo.did.slice(8, 13)}.test` }) });
      upstream.push({ did: repo.did, label: 'account', bytes: accountFrame({ seq: ++seq, did: repo.did, active: true }) });
      upstream.push({ did: repo.did, label: 'sync', bytes: syncFrameOf(await repo.sync(++seq)) });
    }
    for (const [repo, text] of [[alice, 'profile by alice'], [bob, 'profile by bob'], [alice, 'post by alice'], [carol, 'post by carol'], [bob, 'post by bob']] as const) {
      upstream.push({ did: repo.did, label: text, bytes: commitFrameOf(await repo.commit(++seq, [post(text)])) });
    }
    for (const [i, { bytes }] of upstream.entries()) relay.push({ seq: i + 1, bytes });
    const emitted = upstream.filter(({ label }) => label !== 'sync'); // Jetstream v1 has no #sync event
    const labelOf = (event: Record<string, any>) => event.commit?.record?.text ?? event.kind;

    const live = await Subscription.open(gateway.port, 'cursor=0');
    await live.waitForCount(emitted.length - 2, "everything but bob's two commits");
    assert.ok(!live.events.some((e) => e.did === bob.did && e.kind === 'commit'), "bob's commits wait for his key");
    openBob();
    await live.waitForCount(emitted.length);
    const events = live.events;
    assert.deepEqual(
      events.map((e) => `${e.did} ${labelOf(e)}`),
      [...emitted.filter(({ label }) => !label.endsWith('by bob')), ...emitted.filter(({ label }) => label.endsWith('by bob'))].map(({ did, label }) => `${did} ${label}`),
      "bob's held commits come out after what overtook them, in their own order",
    );
    for (const repo of [alice, bob, carol]) {
      assert.deepEqual(events.filter((e) => e.did === repo.did).map(labelOf), emitted.filter(({ did }) => did === repo.did).map(({ label }) => label), `${repo.did}: upstream order`);
    }
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.time_us > events[i - 1]!.time_us, `time_us of event #${i} increases`);
    const replay = await Subscription.open(gateway.port, 'cursor=0');
    await replay.waitForCount(events.length);
    assert.deepEqual(replay.texts, live.texts, 'a replay from the cursor gives exactly what live clients got');
  });

  test('an out-of-sync repo is resynced from its PDS within the operator\'s limits: over --verify-resync-max-bytes it fails; --verify-resyncs 0 asks nothing', async (t) => {
    const plc = await plcDirectory(t);
    const pds = await repoHost(t);
    const cases = [
      // The commit after the tampered one is held while the resync runs: then dropped as already in the snapshot, or withheld.
      { name: 'defaults', flags: {}, resyncs: { resynced: 1, failed: 0 }, asked: 1, next: 'rev_not_newer' },
      { name: 'max bytes', flags: { verifyResyncMaxBytes: 100, verifyResyncAttempts: 1 }, resyncs: { resynced: 0, failed: 1 }, asked: 1, next: 'out_of_sync' },
      { name: 'no resyncs', flags: { verifyResyncs: 0 }, resyncs: { resynced: 0, failed: 0 }, asked: 0, next: 'out_of_sync' },
    ];
    for (const [i, { name, flags, resyncs, asked, next }] of cases.entries()) {
      const h = await startRelayGateway({ verify: 'full', plcUrl: plc.url, ...flags });
      const { relay, gateway } = h;
      try {
        const repo = await SignedRepo.create(`did:plc:resyncgateway${i}00000000000`);
        plc.publish(repo.did, repo.signingKey, pds.url);
        pds.host(repo);
        relay.push({ seq: 1, bytes: commitFrameOf(await repo.commit(1, [post('before')])) });
        relay.push({ seq: 2, bytes: commitFrameOf(withWrongPrevData(await repo.commit(2, [post('tampered')]))) });
        relay.push({ seq: 3, bytes: commitFrameOf(await repo.commit(3, [post('next')])) });
        const metric = async (series: string) => seriesValue((await httpGet(gateway.metricsPort, '/metrics')).body.toString(), series);
        const ended = async () => (await metric('contrail_verify_resyncs_total{result="resynced"}')) + (await metric('contrail_verify_resyncs_total{result="failed"}'));
        const judged = async () => (await metric('contrail_verify_failures_total{reason="rev_not_newer"}')) + (await metric('contrail_verify_failures_total{reason="out_of_sync"}'));
        await waitUntil(async () => (await judged()) === 1 && (await ended()) === asked, `${name}: the commit after the tampered one judged`);
        assert.equal(await metric('contrail_verify_failures_total{reason="bad_inversion"}'), 1, `${name}: the tampered commit`);
        assert.equal(await metric(`contrail_verify_failures_total{reason="${next}"}`), 1, `${name}: the next commit`);
        assert.equal(await metric('contrail_verify_resyncs_total{result="resynced"}'), resyncs.resynced, `${name}: resynced`);
        assert.equal(await metric('contrail_verify_resyncs_total{result="failed"}'), resyncs.failed, `${name}: failed`);
        assert.equal(pds.requested.filter((did) => did === repo.did).length, asked, `${name}: fetches from the PDS`);
      } finally {
        await stopRelayGateway(h);
      }
    }
  });

  test('--verify-resync-retry: after a failed resync, the repo\'s first commit that long later starts another', async (t) => {
    const plc = await plcDirectory(t);
    const pds = await repoHost(t); // never hosts the repo: each resync fails
    const retryMs = 200;
    const h = await startRelayGateway({ verify: 'full', plcUrl: plc.url, verifyResyncAttempts: 1, verifyResyncRetryMs: retryMs });
    t.after(() => stopRelayGateway(h));
    const { relay, gateway } = h;
    const repo = await SignedRepo.create('did:plc:resyncretryflag00000000000');
    plc.publish(repo.did, repo.signingKey, pds.url);
    const metric = async (series: string) => seriesValue((await httpGet(gateway.metricsPort, '/metrics')).body.toString(), series);
    relay.push({ seq: 1, bytes: commitFrameOf(await repo.commit(1, [post('before')])) });
    relay.push({ seq: 2, bytes: commitFrameOf(withWrongPrevData(await repo.commit(2, [post('tampered')]))) });
    await waitUntil(async () => (await metric('contrail_verify_resyncs_total{result="failed"}')) === 1, 'the first resync to fail');
    // The retry is due at most retryMs after the failure was counted (the default would be 30 s away).
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    relay.push({ seq: 3, bytes: commitFrameOf(await repo.commit(3, [post('next')])) });
    // Withheld either way: at once (no resync due), or once the resync it started failed as well.
    await waitUntil(async () => (await metric('contrail_verify_failures_total{reason="out_of_sync"}')) === 1, 'the next commit to be judged');
    assert.equal(await metric('contrail_verify_resyncs_total{result="failed"}'), 2, 'the commit started a second resync');
    assert.deepEqual(pds.requested, [repo.did, repo.did], 'the PDS was asked again');
  });

  test('subscribers get only what verifies; a repo held across a restart is read again, not lost', async (t) => {
    const plc = await plcDirectory(t);
    const relay = await FakeRelay.start();
    const dir = tempDir('contrail-verify-gateway-');
    t.after(async () => {
      await Subscription.closeAll();
      await relay.stop();
      dir.remove();
    });
    const alice = await SignedRepo.create('did:plc:alicegateway0000000000000');
    const bob = await SignedRepo.create('did:plc:bobgateway000000000000000');
    plc.publish(alice.did, alice.signingKey);
    plc.publish(bob.did, bob.signingKey);
    const push = (seq: number, bytes: Uint8Array) => relay.push({ seq, bytes });
    const bodies = {
      good: await alice.commit(1, [post('good')]),
      forged: await withBadSignature(await alice.commit(2, [post('forged')])),
      gap: await alice.commit(3, [post('after the forgery')]),
      sync: await alice.sync(4),
      resumed: await alice.commit(5, [post('resumed')]),
    };
    let gateway = await startTestGateway(relay.url, dir.path, { verify: 'full', plcUrl: plc.url });
    t.after(() => gateway.stop());
    await relay.waitForConnections(1);
    push(1, commitFrameOf(bodies.good));
    push(2, commitFrameOf(bodies.forged));
    push(3, commitFrameOf(bodies.gap));
    push(4, syncFrameOf(bodies.sync));
    push(5, commitFrameOf(bodies.resumed));
    const texts = async (subscription: Subscription, count: number) => {
      await subscription.waitForCount(count);
      return subscription.events.map((e) => e.commit?.record?.text);
    };
    let subscription = await Subscription.open(gateway.port, 'cursor=0');
    assert.deepEqual(await texts(subscription, 2), ['good', 'resumed']);
    const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
    assert.match(metrics, /contrail_verify_failures_total\{reason="bad_signature"\} 1/);
    assert.match(metrics, /contrail_verify_failures_total\{reason="out_of_sync"\} 1/);

    // Bob's key cannot be fetched yet: his commit is held while alice's goes ahead, and the
    // gateway stops meanwhile. The saved cursor stays below bob's commit, so the next run reads it.
    const open = plc.stall();
    push(6, commitFrameOf(await bob.commit(6, [post("bob's first")])));
    push(7, commitFrameOf(await alice.commit(7, [post('alice again')])));
    assert.deepEqual(await texts(subscription, 3), ['good', 'resumed', 'alice again']);
    await subscription.close();
    await gateway.stop();
    open();
    gateway = await startTestGateway(relay.url, dir.path, { verify: 'full', plcUrl: plc.url });
    subscription = await Subscription.open(gateway.port, 'cursor=0');
    assert.deepEqual(await texts(subscription, 4), ['good', 'resumed', 'alice again', "bob's first"]);
    assert.equal(relay.cursors.at(-1), 5, 'resumed below the held seq 6');
  });
});
