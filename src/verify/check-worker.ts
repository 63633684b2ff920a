/**
 * A verification worker thread: runs checkCommit/checkSync for the main thread's CheckPool.
 * It holds no repo state (revs, out of sync, held messages stay on the main thread): it gets a
 * message's bytes and the key to check them with, and answers pass or the failure.
 */
import { parentPort } from 'node:worker_threads';
import { Link } from '../atproto/index.ts';
import { CarSlice } from '../upstream/index.ts';
import { checkCommit, checkSync } from './check.ts';
import type { CheckReply, CheckRequest } from './check-pool.ts';
import { asVerifyError } from './failure.ts';
import { SigningKeys } from './signing-keys.ts';

const keys = new SigningKeys();
const link = (bytes: Uint8Array | undefined) => (bytes ? new Link(bytes) : undefined);

async function run(request: CheckRequest): Promise<void> {
  if (request.kind === 'sync') {
    await checkSync(request, request.signingKey, keys);
    return;
  }
  const proof = {
    commit: link(request.commit),
    prevData: link(request.prevData),
    car: new CarSlice(request.car),
    ops: request.ops.map((op) => ({ action: op.action, path: op.path, cid: link(op.cid), prev: link(op.prev) })),
  };
  await checkCommit({ repo: request.repo, rev: request.rev, proof }, request.signingKey, request.mode, keys);
}

parentPort!.on('message', (request: CheckRequest | { id: -1; kind: 'ping' }) => {
  if (request.kind === 'ping') return parentPort!.postMessage({ id: request.id } satisfies CheckReply);
  run(request).then(
    () => parentPort!.postMessage({ id: request.id } satisfies CheckReply),
    (err: unknown) => {
      const { reason, message } = asVerifyError(err);
      parentPort!.postMessage({ id: request.id, failure: { reason, message } } satisfies CheckReply);
    },
  );
});
