/**
 * A verification worker thread: runs checkCommit/checkSync for the main thread's CheckPool.
 * It holds no repo state (revs, out of sync, held messages stay on the main thread): it gets
 * messages' bytes and the keys to check them with, and answers the failure, or that it passed
 * with (in `full` mode) the signed commit's MST root, so the main thread never decodes it again.
 *
 * Checks come in batches and run one after another. The first answer of a batch goes back at
 * once — the main thread, judging in order, is likely waiting for it (at a steady rate a batch
 * is a message or two that just arrived) — then the rest a few at a time, so under a backlog the
 * main thread judges the first ones while the rest run, and pays one message per few.
 */
import { parentPort } from 'node:worker_threads';
import { Link } from '../atproto/index.ts';
import { CarSlice } from '../upstream/index.ts';
import { checkCommit, checkSync, passed } from './check.ts';
import type { SignedCommit } from './signed-commit.ts';
import { ABSENT, bytesAt, type BytesAt, type CheckReply, type CheckRequest, type WorkerReply, type WorkerRequest } from './check-pool.ts';
import { asVerifyError } from './failure.ts';
import { SigningKeys } from './signing-keys.ts';

/** Answers sent together, at most (fewer when a batch ends). */
const ANSWERS_PER_MESSAGE = 8;

const keys = new SigningKeys();

async function run(request: CheckRequest, buffer: ArrayBuffer): Promise<CheckReply> {
  const link = (at: BytesAt) => (at === ABSENT ? undefined : new Link(bytesAt(buffer, at)));
  try {
    let commit: SignedCommit;
    if (request.kind === 'sync') {
      commit = await checkSync({ did: request.did, rev: request.rev, blocks: bytesAt(buffer, request.blocks) }, request.signingKey, keys);
    } else {
      const proof = {
        commit: link(request.commit),
        prevData: link(request.prevData),
        car: new CarSlice(bytesAt(buffer, request.car)),
        ops: request.ops.map((op) => ({ action: op.action, path: op.path, cid: link(op.cid), prev: link(op.prev) })),
      };
      commit = await checkCommit({ repo: request.repo, rev: request.rev, proof }, request.signingKey, request.mode, keys);
    }
    return { id: request.id, data: passed(commit, request.mode).data };
  } catch (err) {
    const { reason, message } = asVerifyError(err);
    return { id: request.id, failure: { reason, message } };
  }
}

/**
 * Sends answers. Their MST roots (`full`) go as views of one buffer that is handed over: cloned,
 * each would be a buffer of its own to allocate on both threads (see WorkerRequest).
 */
function reply(message: WorkerReply): void {
  let size = 0;
  if (message.kind === 'answers') for (const { data } of message.answers) size += data?.length ?? 0;
  if (message.kind !== 'answers' || size === 0) {
    parentPort!.postMessage(message);
    return;
  }
  const roots = new Uint8Array(size);
  let at = 0;
  for (const answer of message.answers) {
    if (!answer.data) continue;
    roots.set(answer.data, at);
    answer.data = roots.subarray(at, (at += answer.data.length));
  }
  parentPort!.postMessage(message, [roots.buffer]);
}

/** Runs a batch in order, answering after its first check, then every ANSWERS_PER_MESSAGE and at its end. Never rejects (run catches). */
async function runBatch(checks: CheckRequest[], buffer: ArrayBuffer): Promise<void> {
  let answers: CheckReply[] = [];
  for (const check of checks) {
    answers.push(await run(check, buffer));
    if (answers.length === ANSWERS_PER_MESSAGE || check === checks[0]) {
      reply({ kind: 'answers', answers });
      answers = [];
    }
  }
  if (answers.length > 0) reply({ kind: 'answers', answers });
}

parentPort!.on('message', (request: WorkerRequest) => void runBatch(request.checks, request.bytes));
// Loaded: the pool counts it as started from here on (see WorkerPool).
reply({ kind: 'ready' });
