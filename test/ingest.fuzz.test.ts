/**
 * Bounded fuzz of the ingest path: realistic frames (SyntheticFirehose), mutated with a seeded
 * PRNG (bit flips, truncations, splices, overwrites, insertions), through decodeFrame,
 * parseMessage and buildEvents. Whatever the input, only a DropError may come out as an
 * exception, and every event that comes out is valid JSON in Jetstream v1's exact shape, with
 * a record that hashes to its CID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import { CursorClock } from '../src/events/clock.ts';
import { buildEvents, type Entry } from '../src/events/entry.ts';
import { DropError } from '../src/upstream/drop.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../src/upstream/messages.ts';
import { toDagJson } from './support/dag-json.ts';
import type { EventMessage } from './support/events.ts';
import { objectKeyLists } from './support/json-keys.ts';
import { mulberry32, SyntheticFirehose } from './support/synthetic.ts';

const ITERATIONS = 2_000;
const SEED = 20261125;

type Mutation = (bytes: Buffer, rnd: () => number, other: Uint8Array) => Buffer;

const int = (rnd: () => number, below: number) => Math.floor(rnd() * below);

const MUTATIONS: Record<string, Mutation> = {
  bitflips: (bytes, rnd) => {
    const out = Buffer.from(bytes);
    for (let n = 1 + int(rnd, 8); n > 0; n--) out[int(rnd, out.length)]! ^= 1 << int(rnd, 8);
    return out;
  },
  truncate: (bytes, rnd) => bytes.subarray(0, int(rnd, bytes.length)),
  splice: (bytes, rnd, other) => Buffer.concat([bytes.subarray(0, int(rnd, bytes.length)), other.subarray(int(rnd, other.length))]),
  overwrite: (bytes, rnd) => {
    const out = Buffer.from(bytes);
    const at = int(rnd, out.length);
    for (let i = at; i < Math.min(out.length, at + 1 + int(rnd, 16)); i++) out[i] = int(rnd, 256);
    return out;
  },
  insert: (bytes, rnd) => {
    const at = int(rnd, bytes.length);
    const junk = Buffer.from(Array.from({ length: 1 + int(rnd, 8) }, () => int(rnd, 256)));
    return Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]);
  },
  // Small integers and lengths are where CBOR structure lives: nudge one byte by ±1.
  nudge: (bytes, rnd) => {
    const out = Buffer.from(bytes);
    const at = int(rnd, out.length);
    out[at] = (out[at]! + (rnd() < 0.5 ? 1 : 255)) & 0xff;
    return out;
  },
};

const EVENT_KEYS = ['did', 'time_us', 'kind'];
const COMMIT_KEYS = ['rev', 'operation', 'collection', 'rkey'];

/** One event against Jetstream v1's shape and the message it came from. */
function assertEvent(entry: Entry, message: EventMessage, previousTimeUs: number): void {
  const text = entry.json.toString('utf8');
  assert.ok(Buffer.from(text, 'utf8').equals(entry.json), 'event JSON is valid UTF-8');
  const event = JSON.parse(text);
  const keys = objectKeyLists(text);
  assert.deepEqual(keys[0], [...EVENT_KEYS, message.type]);
  assert.equal(event.kind, message.type);
  assert.equal(event.kind, entry.kind);
  assert.equal(event.time_us, entry.timeUs);
  assert.ok(Number.isSafeInteger(event.time_us) && event.time_us > previousTimeUs, 'time_us strictly increasing');
  assert.equal(event.did, entry.did);
  switch (message.type) {
    case 'commit': {
      assert.equal(event.did, message.repo);
      const { commit } = event;
      assert.equal(commit.rev, message.rev);
      assert.equal(entry.collection, commit.collection);
      const op = message.ops.find((o) => o.collection === commit.collection && o.rkey === commit.rkey && o.action === commit.operation);
      assert.ok(op, 'the event names an op of the commit');
      if (op.action === 'delete') {
        assert.deepEqual(keys[1], COMMIT_KEYS);
        return;
      }
      assert.deepEqual(keys[1], [...COMMIT_KEYS, 'record', 'cid']);
      assert.equal(commit.cid, op.cid);
      assert.equal(typeof commit.record, 'object');
      assert.equal(typeof commit.record.$type, 'string');
      assert.ok(commit.record.$type.length > 0);
      const cid = CID.parse(commit.cid);
      assert.ok(createHash('sha256').update(op.record!).digest().equals(Buffer.from(cid.multihash.digest)), 'the record hashes to its CID');
      return;
    }
    case 'identity':
      assert.deepEqual(keys[1], ['did', ...(message.handle === undefined ? [] : ['handle']), 'seq', 'time']);
      assert.equal(entry.collection, null);
      return;
    case 'account':
      assert.deepEqual(keys[1], ['active', 'did', 'seq', ...(message.status === undefined ? [] : ['status']), 'time']);
      assert.equal(typeof event.account.active, 'boolean');
      assert.equal(entry.collection, null);
      return;
  }
}

test(`fuzz: ${ITERATIONS} mutated frames never throw anything but DropError, and every event is Jetstream-shaped`, () => {
  const rnd = mulberry32(SEED);
  const frames = new SyntheticFirehose({ seed: SEED, accounts: 100 }).frames(400).map((f) => Buffer.from(f.bytes));
  const clock = new CursorClock(0, () => 1);
  const names = Object.keys(MUTATIONS);
  const outcomes = new Map<string, number>();
  const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  let events = 0;
  let lastTimeUs = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const name = names[i % names.length]!;
    const input = MUTATIONS[name]!(frames[int(rnd, frames.length)]!, rnd, frames[int(rnd, frames.length)]!);
    let message: UpstreamMessage;
    try {
      message = parseMessage(decodeFrame(input, 5 * 1024 * 1024));
    } catch (err) {
      if (!(err instanceof DropError)) {
        assert.fail(`iteration ${i} (${name}) threw ${(err as Error)?.stack ?? err} for ${input.toString('base64')}`);
      }
      count(`frame:${err.reason}`);
      continue;
    }
    count(`message:${message.type}`);
    if (message.type !== 'commit' && message.type !== 'identity' && message.type !== 'account') continue;
    const built = buildEvents(message, clock);
    for (const drop of message.type === 'commit' ? [...message.drops, ...built.drops] : built.drops) count(`op:${drop.reason}`);
    for (const entry of built.entries) {
      assertEvent(entry, message, lastTimeUs);
      lastTimeUs = entry.timeUs;
      events++;
    }
  }
  // The fuzz reached both sides: plenty decoded into events, and many kinds of damage were caught.
  const reasons = [...outcomes.keys()].filter((k) => !k.startsWith('message:'));
  assert.ok(events > ITERATIONS / 10, `only ${events} events came out`);
  assert.ok(reasons.length >= 8, `only ${reasons.join(', ')}`);
  for (const expected of ['frame:truncated', 'frame:malformed_cbor', 'frame:trailing_bytes', 'op:cid_mismatch']) {
    assert.ok(outcomes.has(expected), `never saw ${expected} (saw ${[...outcomes.keys()].join(', ')})`);
  }
});

test(`fuzz: ${ITERATIONS} mutated record blocks (re-hashed, so they pass the CID check) become an event or a bad_record drop, nothing else`, () => {
  // Frame mutations mostly end at the CID check; this reaches the record transcoder with damage.
  const rnd = mulberry32(SEED + 2);
  const records: Array<{ collection: string; block: Uint8Array }> = [];
  for (const frame of new SyntheticFirehose({ seed: SEED + 2, accounts: 100 }).frames(300)) {
    const message = parseMessage(decodeFrame(frame.bytes, 5 * 1024 * 1024));
    if (message.type === 'commit') for (const op of message.ops) if (op.record) records.push({ collection: op.collection, block: op.record });
  }
  const names = Object.keys(MUTATIONS);
  const clock = new CursorClock();
  let lastTimeUs = 0;
  let events = 0;
  let dropped = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const { collection, block } = records[int(rnd, records.length)]!;
    const mutated = MUTATIONS[names[i % names.length]!]!(Buffer.from(block), rnd, records[int(rnd, records.length)]!.block);
    const cid = CID.createV1(dagCbor.code, createDigest(0x12, createHash('sha256').update(mutated).digest())).toString();
    const message = {
      type: 'commit' as const,
      seq: i + 1,
      repo: 'did:plc:fuzz',
      rev: '3lbv2xh5u3s22',
      time: '2026-11-25T00:00:00.000Z',
      ops: [{ action: 'create' as const, collection, rkey: `r${i}`, cid, record: new Uint8Array(mutated) }],
      drops: [],
    };
    const built = buildEvents(message, clock);
    assert.equal(built.entries.length + built.drops.length, 1);
    for (const drop of built.drops) {
      assert.equal(drop.reason, 'bad_record');
      dropped++;
    }
    for (const entry of built.entries) {
      assertEvent(entry, message, lastTimeUs);
      lastTimeUs = entry.timeUs;
      events++;
      // What the transcoder accepted, the reference decoder reads the same way.
      const reference = toDagJson(dagCbor.decode(mutated), (n) => Number(n));
      assert.deepEqual(JSON.parse(entry.json.toString()).commit.record, reference);
    }
  }
  assert.ok(events > ITERATIONS / 20 && dropped > ITERATIONS / 20, `${events} events, ${dropped} drops`);
});

test('fuzz: unmutated frames all decode, and every op becomes an event', () => {
  const synthetic = new SyntheticFirehose({ seed: SEED + 1, accounts: 100 });
  const clock = new CursorClock();
  let lastTimeUs = 0;
  for (const frame of synthetic.frames(300)) {
    const message = parseMessage(decodeFrame(frame.bytes, 5 * 1024 * 1024));
    assert.ok(message.type === 'commit' || message.type === 'identity' || message.type === 'account');
    const { entries, drops } = buildEvents(message, clock);
    assert.deepEqual(drops, []);
    assert.equal(entries.length, frame.events);
    for (const entry of entries) {
      assertEvent(entry, message, lastTimeUs);
      lastTimeUs = entry.timeUs;
    }
  }
});
