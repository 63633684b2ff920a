/**
 * A relay may keep a repo's real signed commit block (so the signature, rev and commit CID all
 * check out) and swap an op's record for one it wrote, with that record's CID in the op. Both
 * --verify modes tie the ops to the signed commit's MST root: `full` by undoing them, `signatures`
 * by looking each up in the tree the CAR carries. Before, `signatures` checked no op against the
 * tree, and the forged record was emitted as the repo's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CarBufferReader, CarBufferWriter } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import type { VerifyMode } from '../src/verify/index.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, type CommitBody } from './support/signed-repo.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';

/** The same signed commit, its first op's record replaced by the relay's own. */
async function withForgedRecord(body: CommitBody, record: Record<string, unknown>): Promise<CommitBody> {
  const reader = CarBufferReader.fromBytes(body.blocks);
  const roots = reader.getRoots();
  const blocks = reader.blocks();
  const bytes = dagCbor.encode(record);
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes));
  const all = [...blocks, { cid, bytes }];
  const size = CarBufferWriter.headerLength({ roots }) + all.reduce((sum, b) => sum + CarBufferWriter.blockLength(b), 0);
  const writer = CarBufferWriter.createWriter(new ArrayBuffer(size), { roots });
  for (const block of all) writer.write(block);
  return { ...body, blocks: writer.close(), ops: body.ops.map((op, i) => (i === 0 ? { ...op, cid } : op)) };
}

for (const mode of ['signatures', 'full'] as VerifyMode[]) {
  test(`--verify ${mode}: a real signed commit carrying a record the relay swapped in is not emitted`, async (t) => {
    const alice = await SignedRepo.create('did:plc:aliceforged00000000000000');
    const { url: plcUrl } = await localHttpServer(t, (req, res) => res.end(didDocument(decodeURIComponent(req.url!.slice(1)), alice.signingKey)));
    const { verifier, delivered, registry } = verifierUnderTest(t, plcUrl, { mode });
    const real = await alice.commit(1, [{ action: 'create', collection: POST, rkey: '3lforgedaaaaa', record: { $type: POST, text: 'what alice wrote', createdAt: '2026-12-01T00:00:00.000Z' } }]);
    const forged = await withForgedRecord(real, { $type: POST, text: 'words put in alice’s mouth', createdAt: '2026-12-01T00:00:00.000Z' });
    const message = commitOf(forged);
    assert.equal(message.type === 'commit' && message.ops.length, 1, 'the forged op passes the upstream CID check');
    verifier.handle(message);
    await waitUntil(async () => delivered.length > 0 || (await registry.metrics()).includes('contrail_verify_failures_total{'), 'the commit to be judged');
    await verifier.idle();
    assert.equal(delivered.length, 0, `--verify ${mode} emitted the forged record as alice's`);
  });
}
