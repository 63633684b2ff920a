/**
 * Review (session 16): a verification failure is logged with its detail, and that can hold the
 * relay's own strings of any length: an op's path (here 1 MB, so bad_inversion quotes it) or action.
 * (A frame's rev could be any string too; one that is no TID is now dropped before verification.)
 * Each reason's first line, then one every 10 s, could be megabytes. They are logged cut to a
 * bounded length, saying how long they were.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';
import { commitOf, didDocument, verifierUnderTest } from './support/verifier-harness.ts';

const POST = 'app.bsky.feed.post';

test('a failure whose frame carries megabyte strings is logged in a line of bounded length', async (t) => {
  const alice = await SignedRepo.create('did:plc:alicelongfailureline00000');
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => res.end(didDocument(alice.did, alice.signingKey)));
  const logs: LogLine[] = [];
  const { verifier } = verifierUnderTest(t, plcUrl, { logger: capturingLogger(logs) });
  const body = await alice.commit(1, [{ action: 'create', collection: POST, rkey: '3laaaaaaaaaaa', record: { $type: POST, text: 'x', createdAt: '2026-12-01T00:00:00.000Z' } }]);
  verifier.handle(commitOf({ ...body, ops: body.ops.map((op) => ({ ...op, path: `${POST}/${'z'.repeat(1_000_000)}` })) }));
  await waitUntil(() => verifier.outOfSync(alice.did) !== undefined, 'the commit judged');
  await verifier.idle();
  const failure = logs.find((line) => line.msg === 'upstream message failed verification; not emitted');
  assert.ok(failure, 'the failure is logged');
  assert.equal(failure.reason, 'bad_inversion');
  const longest = Math.max(...logs.map((line) => JSON.stringify(line).length));
  assert.ok(longest < 4_000, `a log line of ${longest} characters`);
  assert.match(String(failure.detail), /1000019 characters/);
});
