/**
 * A message the Verifier cannot handle for a reason no check names (a bug: here the stage after it,
 * `deliver`, throws on every message) is dropped and logged as 'verification failed unexpectedly'.
 * That line was logged for every message: a bug that hits every message would write one error
 * line per upstream message, thousands a second. It follows the per-repo lines' limits (RepoLog):
 * the first, then one per interval carrying how many it stands for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrame, parseMessage } from '../src/upstream/index.ts';
import { accountFrame } from './support/frames.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';
import { verifierUnderTest } from './support/verifier-harness.ts';

const MESSAGES = 50;
const INTERVAL_MS = 10_000;

test('\'verification failed unexpectedly\' is logged the first time, then once per interval with the lines it stands for', async (t) => {
  const { url: plcUrl } = await localHttpServer(t, (_req, res) => res.writeHead(404).end());
  const logs: LogLine[] = [];
  let now = 1_000_000;
  let handed = 0;
  const { verifier } = verifierUnderTest(t, plcUrl, {
    logger: capturingLogger(logs),
    nowMs: () => now,
    deliver: () => {
      handed++;
      throw new Error('a bug in the stage after verification');
    },
  });
  const account = (seq: number) => parseMessage(decodeFrame(accountFrame({ seq, did: `did:plc:unexpected${String(seq).padStart(10, '0')}`, active: true }), 10_000));
  const unexpected = () => logs.filter((line) => line.msg.startsWith('verification failed unexpectedly'));

  for (let seq = 1; seq <= MESSAGES; seq++) verifier.handle(account(seq));
  await waitUntil(() => handed === MESSAGES, `${MESSAGES} messages handed on`);
  await verifier.idle();
  assert.equal(unexpected().length, 1, `${unexpected().length} lines for ${MESSAGES} messages`);
  assert.equal(unexpected()[0]!.level, 50);
  assert.match(String((unexpected()[0]!.err as { message?: string })?.message), /a bug in the stage after verification/);

  now += INTERVAL_MS;
  verifier.handle(account(MESSAGES + 1));
  await waitUntil(() => handed === MESSAGES + 1, 'the message an interval later handed on');
  await verifier.idle();
  assert.equal(unexpected().length, 2, 'one more line once the interval is over');
  assert.equal(unexpected()[1]!.linesSinceLastLog, MESSAGES, 'it stands for the lines held back and itself');
});
