/**
 * Review (session 16, verification lane): subscribeRepos' lexicon allows a #commit at most 200 ops
 * and 2,000,000 bytes of blocks (a PDS writes at most 200 records per commit). contrail took any
 * number within --max-frame-bytes (5 MB), and finding each op's record in the CAR scans its blocks:
 * a hostile relay's 4.9 MB commit of 20,000 ops over 40,000 tiny blocks held the main thread 8.7 s
 * (ingest, subscribers, pings), with or without --verify. Past the limits the frame is a counted drop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DropError } from '../src/upstream/drop.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage } from '../src/upstream/messages.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { cborBlock, commitFrame, tidFor, type OpSpec } from './support/frames.ts';
import { waitUntil } from './support/poll.ts';
import { metricValue, seqsOf, startClient } from './support/upstream-harness.ts';

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const like = (i: number): OpSpec => ({ action: 'create', path: `app.bsky.feed.like/${tidFor(1_000 + i)}`, record: { $type: 'app.bsky.feed.like', n: i } });
const likes = (count: number) => Array.from({ length: count }, (_, i) => like(i));

function dropOf(frame: Uint8Array): DropError {
  try {
    const message = parseMessage(decodeFrame(frame, 5 * 1024 * 1024));
    return assert.fail(`expected a drop, decoded a ${message.type}`);
  } catch (err) {
    if (!(err instanceof DropError)) throw err;
    return err;
  }
}

test('a #commit of more than 200 ops, or of more than 2,000,000 bytes of blocks, is dropped as over_limit; at the limits it decodes', () => {
  const atOps = parseMessage(decodeFrame(commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops: likes(200) }), 5 * 1024 * 1024));
  assert.equal(atOps.type === 'commit' && atOps.ops.length, 200);

  const tooMany = dropOf(commitFrame({ seq: 2, repo: DID, rev: tidFor(2), ops: likes(201) }));
  assert.equal(tooMany.reason, 'over_limit');
  assert.match(tooMany.message, /201 ops.*200/);

  // Filler blocks (a hostile CAR's padding) bring the CAR to just over the limit.
  const filler = (bytes: number) => [cborBlock(new Uint8Array(bytes))];
  const sizeOfCar = (bytes: number) => (parseMessage(decodeFrame(commitFrame({ seq: 3, repo: DID, rev: tidFor(3), ops: [like(0)], extraBlocks: filler(bytes) }), 5 * 1024 * 1024)) as { proof: { car: { bytes: Uint8Array } } }).proof.car.bytes.length;
  const base = sizeOfCar(1_000_000);
  const atBytes = 1_000_000 + (2_000_000 - base);
  assert.equal(sizeOfCar(atBytes), 2_000_000);
  const tooBig = dropOf(commitFrame({ seq: 4, repo: DID, rev: tidFor(4), ops: [like(0)], extraBlocks: filler(atBytes + 1) }));
  assert.equal(tooBig.reason, 'over_limit');
  assert.match(tooBig.message, /2000001 bytes.*2000000/);
});

test('end to end: a relay\'s commit of 20,000 ops is counted and logged as over_limit, and the client carries on', async (t) => {
  const relay = await FakeRelay.start();
  const defer = cleanup(t);
  defer(() => relay.stop());
  const harness = startClient(relay.url);
  defer(() => harness.client.stop());
  await relay.waitForConnections(1);

  relay.push({ bytes: commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops: likes(20_000) }) });
  relay.push({ bytes: commitFrame({ seq: 2, repo: DID, rev: tidFor(2), ops: [like(0)] }) });
  await waitUntil(() => seqsOf(harness.messages).includes(2), 'the commit after it', 60_000);

  assert.deepEqual(seqsOf(harness.messages), [2]);
  assert.equal(await metricValue(harness.registry, 'contrail_ingest_drops_total', { reason: 'over_limit' }), 1);
  assert.ok(harness.logs.some((line) => line.msg === 'dropped upstream input' && line.reason === 'over_limit'));
});
