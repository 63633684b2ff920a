import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFirst } from 'cborg';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { DropError, type DropReason } from '../src/upstream/drop.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../src/upstream/messages.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { accountFrame, carOf, cborBlock, commitFrame, encodeFrame, errorFrame, identityFrame, tidFor, type OpSpec } from './support/frames.ts';
import { metricValue, seqsOf, startClient } from './support/upstream-harness.ts';
import { waitUntil } from './support/poll.ts';

const MAX = 5 * 1024 * 1024;
const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const LIKE = { $type: 'app.bsky.feed.like', createdAt: '2026-11-25T12:00:00.000Z', subject: { cid: 'bafyreib', uri: 'at://did:plc:abc/app.bsky.feed.post/3k' } };

const like = (rkey: string): OpSpec => ({ action: 'create', path: `app.bsky.feed.like/${rkey}`, record: LIKE });
const goodCommit = (seq: number, ops: OpSpec[] = [like(tidFor(seq))]) => commitFrame({ seq, repo: DID, rev: tidFor(seq), ops });

function decode(bytes: Uint8Array, maxBytes = MAX): UpstreamMessage {
  return parseMessage(decodeFrame(bytes, maxBytes));
}

/** The DropReason a whole frame is refused with (fails if it decodes). */
function frameDrop(bytes: Uint8Array, maxBytes = MAX): DropReason {
  try {
    const message = decode(bytes, maxBytes);
    assert.fail(`expected a drop, decoded a ${message.type}`);
  } catch (err) {
    if (!(err instanceof DropError)) throw err;
    return err.reason;
  }
}

/** A commit that decodes, with the reasons its ops were dropped for. */
function opDrops(bytes: Uint8Array): { ops: string[]; drops: DropReason[] } {
  const message = decode(bytes);
  assert.equal(message.type, 'commit');
  return { ops: message.ops.map((op) => `${op.collection}/${op.rkey}`), drops: message.drops.map((d) => d.reason) };
}

/** Re-encodes a frame after editing its decoded body: for inputs the builders cannot make. */
function withBody(frame: Uint8Array, edit: (body: Record<string, unknown>) => unknown): Uint8Array {
  const [header, rest] = decodeFirst(frame, dagCbor.decodeOptions);
  return encodeFrame(header as object, edit(dagCbor.decode(rest) as Record<string, unknown>));
}

test('a truncated frame is dropped as truncated wherever it is cut', () => {
  for (const frame of [goodCommit(1), identityFrame({ seq: 2, did: DID, handle: 'a.example.com' }), accountFrame({ seq: 3, did: DID, active: false, status: 'takendown' })]) {
    const reasons = new Set<DropReason>();
    for (let cut = 0; cut < frame.length; cut++) reasons.add(frameDrop(frame.subarray(0, cut)));
    assert.deepEqual([...reasons], ['truncated']);
  }
});

test('bytes after the body are dropped as trailing_bytes', () => {
  const frame = goodCommit(1);
  for (const tail of [[0x00], [0xff], [0xa0], [...identityFrame({ seq: 2, did: DID })]]) {
    assert.equal(frameDrop(Buffer.concat([frame, Buffer.from(tail)])), 'trailing_bytes');
  }
});

test('a body that is not a map is dropped as body_not_map', () => {
  const link = cborBlock({ a: 1 }).cid;
  for (const body of [[1, 2], 'text', new Uint8Array([1, 2]), 7, null, true, link]) {
    assert.equal(frameDrop(encodeFrame({ op: 1, t: '#commit' }, body)), 'body_not_map', String(body));
  }
  assert.equal(frameDrop(encodeFrame({ op: -1 }, ['FutureCursor'])), 'body_not_map');
  assert.equal(frameDrop(encodeFrame({ op: -1 }, link)), 'body_not_map');
});

test('a header that is not {op: 1, t} or {op: -1} is dropped as bad_header', () => {
  assert.equal(frameDrop(encodeFrame([1, '#commit'], { seq: 1 })), 'bad_header');
  assert.equal(frameDrop(encodeFrame(cborBlock({ op: 1 }).cid, { seq: 1 })), 'bad_header');
  assert.equal(frameDrop(encodeFrame({ op: 2, t: '#commit' }, { seq: 1 })), 'bad_header');
  assert.equal(frameDrop(encodeFrame({ op: 1 }, { seq: 1 })), 'bad_header');
  assert.equal(frameDrop(encodeFrame({ op: 1, t: 5 }, { seq: 1 })), 'bad_header');
});

test('an unknown t is dropped as unknown_type, including retired message types', () => {
  for (const t of ['#foo', '#handle', '#tombstone', '#migrate', 'commit', '']) {
    assert.equal(frameDrop(encodeFrame({ op: 1, t }, { seq: 1, did: DID, time: 'now' })), 'unknown_type', t);
  }
});

test('CBOR that DAG-CBOR forbids is dropped as malformed_cbor', () => {
  const header = dagCbor.encode({ op: 1, t: '#identity' });
  // An indefinite-length map {seq: 1}, a NaN, a non-minimal integer, a non-string key, a repeated key.
  const bodies = [[0xbf, 0x63, 0x73, 0x65, 0x71, 0x01, 0xff], [0xf9, 0x7e, 0x00], [0xa1, 0x61, 0x61, 0x18, 0x01], [0xa1, 0x01, 0x01], [0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02]];
  for (const body of bodies) {
    assert.equal(frameDrop(Buffer.concat([header, Buffer.from(body)])), 'malformed_cbor', Buffer.from(body).toString('hex'));
  }
});

test('a record block that does not hash to its CID drops that op (cid_mismatch), and only that op', () => {
  const forged = { $type: 'app.bsky.feed.like', createdAt: 'forged', subject: LIKE.subject };
  const claimed = cborBlock(LIKE).cid;
  const frame = commitFrame({
    seq: 1,
    repo: DID,
    rev: tidFor(1),
    ops: [like('3lbv2xh5u3s22')],
    omitRecords: true,
    // The CAR says "this is the block for the op's CID" but carries other bytes.
    extraBlocks: [{ cid: claimed, bytes: dagCbor.encode(forged) }],
  });
  assert.deepEqual(opDrops(frame), { ops: [], drops: ['cid_mismatch'] });

  const mixed = commitFrame({
    seq: 2,
    repo: DID,
    rev: tidFor(2),
    ops: [{ action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s23', record: { $type: 'app.bsky.feed.post', text: 'kept' } }, like('3lbv2xh5u3s24')],
  });
  // Swap the like's block for a forged one: same CID in the CAR, other bytes.
  const tampered = withBody(mixed, (body) => {
    const likeCid = cborBlock(LIKE).cid;
    const postBlock = cborBlock({ $type: 'app.bsky.feed.post', text: 'kept' });
    const commit = cborBlock({ did: DID, version: 3, data: cborBlock({ e: [], l: null }).cid, rev: tidFor(2), prev: null, sig: new Uint8Array(64) });
    return { ...body, blocks: carOf([commit.cid], [commit, postBlock, { cid: likeCid, bytes: dagCbor.encode(forged) }]) };
  });
  assert.deepEqual(opDrops(tampered), { ops: ['app.bsky.feed.post/3lbv2xh5u3s23'], drops: ['cid_mismatch'] });
});

test('a record block missing from the CAR drops the op as record_missing; a CAR that is not one drops the frame as bad_car', () => {
  assert.deepEqual(opDrops(commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops: [like('3lbv2xh5u3s22')], omitRecords: true })), { ops: [], drops: ['record_missing'] });
  for (const blocks of [new Uint8Array(0), new Uint8Array([0xff, 0xff, 0xff]), Buffer.from('not a car at all')]) {
    assert.equal(frameDrop(withBody(goodCommit(2), (body) => ({ ...body, blocks }))), 'bad_car');
  }
  // A CAR whose last block runs past the end of the slice.
  const car = (withBodyValue(goodCommit(3), 'blocks') as Uint8Array).subarray(0, -5);
  assert.equal(frameDrop(withBody(goodCommit(3), (body) => ({ ...body, blocks: car }))), 'bad_car');
});

function withBodyValue(frame: Uint8Array, key: string): unknown {
  const [, rest] = decodeFirst(frame, dagCbor.decodeOptions);
  return (dagCbor.decode(rest) as Record<string, unknown>)[key];
}

test('an op path that is not <nsid>/<record-key> drops that op as bad_path', () => {
  const paths = ['app.bsky.feed.like', 'app.bsky.feed.like/a/b', '/3lbv2xh5u3s22', 'app.bsky.feed.like/', 'app.bsky.feed.like/..', 'notansid/3lbv2xh5u3s22', 'app.bsky.feed.like/has space'];
  for (const path of paths) {
    const frame = commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops: [{ action: 'delete', path }, { action: 'delete', path: 'app.bsky.feed.like/3lbv2xh5u3s22' }] });
    assert.deepEqual(opDrops(frame), { ops: ['app.bsky.feed.like/3lbv2xh5u3s22'], drops: ['bad_path'] }, path);
  }
  const notString = withBody(goodCommit(2), (body) => ({ ...body, ops: [{ action: 'delete', path: 42, cid: null }] }));
  assert.deepEqual(opDrops(notString).drops, ['bad_path']);
});

test('an unknown action, a missing or non-record CID drop the op (bad_action, bad_field, unsupported_cid)', () => {
  const frame = goodCommit(1);
  const ops = withBodyValue(frame, 'ops') as Array<Record<string, unknown>>;
  const rawCid = CID.createV1(0x55, (ops[0]!.cid as CID).multihash);
  const edited = withBody(frame, (body) => ({
    ...body,
    ops: [
      { ...ops[0], action: 'frobnicate' },
      { ...ops[0], cid: null },
      { ...ops[0], cid: rawCid },
      null,
      ops[0],
    ],
  }));
  const { ops: kept, drops } = opDrops(edited);
  assert.deepEqual(drops, ['bad_action', 'bad_field', 'unsupported_cid', 'bad_path']);
  assert.equal(kept.length, 1);
});

test('commit, identity and account bodies with a wrong field are dropped as bad_field', () => {
  const frame = goodCommit(1);
  const edits: Array<(body: Record<string, unknown>) => unknown> = [
    ({ seq: _seq, ...body }) => body,
    (body) => ({ ...body, seq: -1 }),
    (body) => ({ ...body, seq: '1' }),
    (body) => ({ ...body, repo: 'alice.example.com' }),
    (body) => ({ ...body, rev: 5 }),
    (body) => ({ ...body, rev: 'zzzzzzzzzzzzz' }),
    (body) => ({ ...body, time: null }),
    (body) => ({ ...body, ops: {} }),
    (body) => ({ ...body, blocks: 'car' }),
  ];
  for (const edit of edits) assert.equal(frameDrop(withBody(frame, edit)), 'bad_field', edit.toString());
  assert.equal(frameDrop(encodeFrame({ op: 1, t: '#identity' }, { seq: 1, did: 'not-a-did', time: 'now' })), 'bad_field');
  assert.equal(frameDrop(encodeFrame({ op: 1, t: '#account' }, { seq: 1, did: DID, time: 'now', active: 'yes' })), 'bad_field');
  assert.equal(frameDrop(encodeFrame({ op: 1, t: '#info' }, { message: 'no name' })), 'bad_field');
});

test('a frame over the size limit is dropped as oversized before it is decoded', () => {
  const big = commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops: [{ action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s22', record: { $type: 'app.bsky.feed.post', text: 'x'.repeat(MAX) } }] });
  assert.ok(big.length > MAX);
  assert.equal(frameDrop(big), 'oversized');
  // Under a larger frame limit it is read, and refused by the commit's own bound (the lexicon's 2,000,000 bytes of blocks).
  assert.equal(frameDrop(big, 2 * MAX), 'over_limit');
  assert.equal(frameDrop(new Uint8Array(MAX + 1)), 'oversized');
});

test('an error frame is a message, not a drop', () => {
  assert.deepEqual(decode(errorFrame('FutureCursor', 'Cursor in the future.')), { type: 'error', error: 'FutureCursor', message: 'Cursor in the future.' });
  assert.deepEqual(decode(errorFrame('ConsumerTooSlow')), { type: 'error', error: 'ConsumerTooSlow', message: undefined });
  assert.deepEqual(decode(encodeFrame({ op: -1 }, { message: 7 })), { type: 'error', error: 'Unknown', message: undefined });
});

test('end to end: each bad frame is counted by reason and logged, and the client carries on with the next frame on the same connection', async (t) => {
  const relay = await FakeRelay.start();
  const harness = startClient(relay.url);
  t.after(async () => {
    await harness.client.stop();
    await relay.stop();
  });
  await relay.waitForConnections(1);
  await waitUntil(() => harness.client.connected, 'the client to connect');

  const forged = commitFrame({ seq: 6, repo: DID, rev: tidFor(6), ops: [like('3lbv2xh5u3s22')], omitRecords: true, extraBlocks: [{ cid: cborBlock(LIKE).cid, bytes: dagCbor.encode({ $type: 'forged' }) }] });
  const noSlash = commitFrame({ seq: 8, repo: DID, rev: tidFor(8), ops: [{ action: 'delete', path: 'app.bsky.feed.like' }] });
  const oversized = commitFrame({ seq: 10, repo: DID, rev: tidFor(10), ops: [{ action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s22', record: { $type: 'app.bsky.feed.post', text: 'x'.repeat(MAX) } }] });
  const script: Array<Uint8Array | string> = [
    goodCommit(1),
    goodCommit(99).subarray(0, 100), // truncated
    goodCommit(2),
    Buffer.concat([goodCommit(98), Buffer.from([0])]), // trailing garbage
    goodCommit(3),
    encodeFrame({ op: 1, t: '#commit' }, ['not', 'a', 'map']),
    goodCommit(4),
    encodeFrame({ op: 1, t: '#frobnicate' }, { seq: 97 }),
    goodCommit(5),
    forged,
    goodCommit(7),
    noSlash,
    goodCommit(9),
    oversized,
    goodCommit(11),
    'a text frame',
    goodCommit(12),
    errorFrame('ConsumerTooSlow', 'slow down'),
    // An error name of the relay's own choosing: counted under 'other', not as a label of its own.
    errorFrame('Relay-chosen-name-1'),
    goodCommit(13),
  ];
  for (const item of script) {
    if (typeof item === 'string') relay.pushText(item);
    else relay.push({ bytes: item });
  }
  await waitUntil(() => seqsOf(harness.messages).includes(13), 'the last good frame');

  assert.deepEqual(seqsOf(harness.messages), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]);
  const bySeq = new Map(harness.messages.flatMap((m) => (m.type === 'commit' ? [[m.seq, m] as const] : [])));
  assert.deepEqual(bySeq.get(6)!.drops.map((d) => d.reason), ['cid_mismatch']);
  assert.equal(bySeq.get(6)!.ops.length, 0);
  assert.deepEqual(bySeq.get(8)!.drops.map((d) => d.reason), ['bad_path']);
  assert.ok(harness.messages.some((m) => m.type === 'error' && m.error === 'ConsumerTooSlow'));

  const expected: DropReason[] = ['truncated', 'trailing_bytes', 'body_not_map', 'unknown_type', 'cid_mismatch', 'bad_path', 'oversized', 'not_binary'];
  for (const reason of expected) {
    assert.equal(await metricValue(harness.registry, 'contrail_ingest_drops_total', { reason }), 1, reason);
    assert.ok(
      harness.logs.some((line) => line.msg === 'dropped upstream input' && line.reason === reason),
      `no log line for ${reason}`,
    );
  }
  const { values } = await harness.registry.getSingleMetric('contrail_ingest_drops_total')!.get();
  assert.equal(values.reduce((sum, v) => sum + v.value, 0), expected.length, 'no other drops');
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_error_frames_total', { error: 'ConsumerTooSlow' }), 1);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_error_frames_total', { error: 'other' }), 1, 'an unknown error name is not a label of its own');
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_frames_total', { type: 'commit' }), 12);

  // One connection throughout: nothing above made the client reconnect.
  assert.equal(relay.cursors.length, 1);
  assert.equal(await metricValue(harness.registry, 'contrail_upstream_connects_total'), 1);
  const disconnects = await harness.registry.getSingleMetric('contrail_upstream_disconnects_total')!.get();
  assert.equal(disconnects.values.reduce((sum, v) => sum + v.value, 0), 0);
  assert.ok(harness.client.connected);
});
