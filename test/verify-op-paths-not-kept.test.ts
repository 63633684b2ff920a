/**
 * Review (session 16): a commit's ops are not signed — a relay can put any next to a real signed
 * commit. Looking an op up in the MST cached its path's key height per thread (up to 100,000 keys)
 * before checking that the path is an MST key at all (3 to 1,024 characters), so a frame whose op
 * has a 3 MB path left 3 MB behind on the thread that checked it: a few hundred such frames (each a
 * commit that fails, but a relay has every repo's real commits to attach them to) and a thread
 * holds gigabytes. A path that is no MST key is refused before anything is cached.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { checkCommit } from '../src/verify/check.ts';
import type { CommitMessage } from '../src/verify/check.ts';
import { SigningKeys } from '../src/verify/index.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { commitOf } from './support/verifier-harness.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROUNDS = 20;
const PATH_CHARS = 3_000_000;
const POST = 'app.bsky.feed.post';

/** Heap and external memory after GC: a decoded string this long lives outside the heap. */
function memoryAfterGc(): number {
  for (let i = 0; i < 4; i++) gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

for (const mode of ['signatures', 'full'] as const) {
  test(`--verify ${mode}: ops whose paths are no MST key fail without their paths being kept`, async () => {
    const repo = await SignedRepo.create(`did:plc:oppathsnotkept${mode === 'full' ? 'f' : 's'}0000000000`);
    const keys = new SigningKeys();
    const body = await repo.commit(1, [{ action: 'create', collection: POST, rkey: '3laaaaaaaaaaa', record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } }]);
    const cid = body.ops[0]!.cid;
    const before = memoryAfterGc();
    for (let round = 0; round < ROUNDS; round++) {
      // Built fresh each round (and read from the frame's bytes), so nothing here holds them.
      const ops = [{ action: 'create', path: `${POST}/${mode}-${round}-${'x'.repeat(PATH_CHARS)}`, cid }];
      const failed = await checkCommit(commitOf({ ...body, ops }) as CommitMessage, repo.signingKey, mode, keys).then(() => undefined, (err: { reason?: string }) => err.reason);
      assert.equal(failed, mode === 'full' ? 'bad_inversion' : 'op_not_in_tree');
    }
    const kept = memoryAfterGc() - before;
    const sent = ROUNDS * PATH_CHARS;
    assert.ok(kept < sent / 4, `${Math.round(kept / 1e6)} MB kept after checking ${Math.round(sent / 1e6)} MB of op paths`);
  });
}
