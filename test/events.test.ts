import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CursorClock } from '../src/events/clock.ts';
import { buildEvents, type Entry } from '../src/events/entry.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../src/upstream/messages.ts';
import { accountFrame, cborBlock, commitFrame, identityFrame, tidFor } from './support/frames.ts';
import { objectKeyLists } from './support/json-keys.ts';

type EventMessage = Extract<UpstreamMessage, { type: 'commit' | 'identity' | 'account' }>;

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const TIME = '2026-11-25T12:00:00.000Z';
const LIKE = { $type: 'app.bsky.feed.like', createdAt: TIME, subject: { cid: 'bafyreib2rxk3rh6kzwq', uri: 'at://did:plc:abc/app.bsky.feed.post/3k' } };

function messageOf(bytes: Uint8Array): EventMessage {
  const message = parseMessage(decodeFrame(bytes, 5_000_000));
  assert.ok(message.type === 'commit' || message.type === 'identity' || message.type === 'account', `got a ${message.type}`);
  return message;
}

/** A clock whose wall clock is frozen at `now`, so every time_us below is known in advance. */
function frozenClock(now = 1_764_072_000_000_000, last = 0): CursorClock {
  return new CursorClock(last, () => now);
}

function only(entries: Entry[]): Entry {
  const [entry] = entries;
  assert.equal(entries.length, 1);
  assert.ok(entry);
  return entry;
}

test('commit create: Jetstream v1 keys in order, record JSON and its CID', () => {
  const rev = tidFor(7);
  const message = messageOf(commitFrame({ seq: 10, repo: DID, rev, time: TIME, ops: [{ action: 'create', path: 'app.bsky.feed.like/3lbv2xh5u3s2e', record: LIKE }] }));
  const { entries, drops } = buildEvents(message, frozenClock());
  const entry = only(entries);
  assert.deepEqual(drops, []);
  const cid = cborBlock(LIKE).cid.toString();
  assert.equal(
    entry.json.toString(),
    `{"did":"${DID}","time_us":1764072000000000,"kind":"commit","commit":{"rev":"${rev}","operation":"create","collection":"app.bsky.feed.like","rkey":"3lbv2xh5u3s2e",` +
      `"record":{"$type":"app.bsky.feed.like","createdAt":"${TIME}","subject":{"cid":"bafyreib2rxk3rh6kzwq","uri":"at://did:plc:abc/app.bsky.feed.post/3k"}},"cid":"${cid}"}}`,
  );
  assert.deepEqual(objectKeyLists(entry.json.toString()).slice(0, 2), [
    ['did', 'time_us', 'kind', 'commit'],
    ['rev', 'operation', 'collection', 'rkey', 'record', 'cid'],
  ]);
  assert.deepEqual({ ...entry, json: undefined }, { timeUs: 1764072000000000, did: DID, kind: 'commit', collection: 'app.bsky.feed.like', json: undefined });
  assert.ok(Buffer.isBuffer(entry.json));
});

test('commit update carries record and cid; delete carries neither', () => {
  const profile = { $type: 'app.bsky.actor.profile', displayName: 'Alice' };
  const message = messageOf(
    commitFrame({
      seq: 11,
      repo: DID,
      rev: tidFor(8),
      ops: [
        { action: 'update', path: 'app.bsky.actor.profile/self', record: profile },
        { action: 'delete', path: 'app.bsky.feed.like/3lbv2xh5u3s2e' },
      ],
    }),
  );
  const { entries } = buildEvents(message, frozenClock());
  assert.equal(entries.length, 2);
  const [update, remove] = entries.map((e) => JSON.parse(e.json.toString()));
  assert.deepEqual(objectKeyLists(entries[0]!.json.toString())[1], ['rev', 'operation', 'collection', 'rkey', 'record', 'cid']);
  assert.equal(update.commit.operation, 'update');
  assert.deepEqual(update.commit.record, profile);
  assert.equal(update.commit.cid, cborBlock(profile).cid.toString());
  assert.deepEqual(objectKeyLists(entries[1]!.json.toString()), [
    ['did', 'time_us', 'kind', 'commit'],
    ['rev', 'operation', 'collection', 'rkey'],
  ]);
  assert.deepEqual(remove.commit, { rev: tidFor(8), operation: 'delete', collection: 'app.bsky.feed.like', rkey: '3lbv2xh5u3s2e' });
  assert.equal(entries[1]!.collection, 'app.bsky.feed.like');
});

test('identity with and without a handle', () => {
  const clock = frozenClock();
  const withHandle = only(buildEvents(messageOf(identityFrame({ seq: 12, did: DID, handle: 'alice.example.com', time: TIME })), clock).entries);
  assert.equal(
    withHandle.json.toString(),
    `{"did":"${DID}","time_us":1764072000000000,"kind":"identity","identity":{"did":"${DID}","handle":"alice.example.com","seq":12,"time":"${TIME}"}}`,
  );
  const without = only(buildEvents(messageOf(identityFrame({ seq: 13, did: DID, time: TIME })), clock).entries);
  assert.equal(without.json.toString(), `{"did":"${DID}","time_us":1764072000000001,"kind":"identity","identity":{"did":"${DID}","seq":13,"time":"${TIME}"}}`);
  assert.deepEqual([without.kind, without.collection, without.did], ['identity', null, DID]);
});

test('account: active without status; every inactive status, written before time as Go orders the struct', () => {
  // Jetstream marshals indigo's SyncSubscribeRepos_Account, whose fields are Active, Did, Seq, Status, Time.
  const clock = frozenClock();
  const active = only(buildEvents(messageOf(accountFrame({ seq: 20, did: DID, active: true, time: TIME })), clock).entries);
  assert.equal(active.json.toString(), `{"did":"${DID}","time_us":1764072000000000,"kind":"account","account":{"active":true,"did":"${DID}","seq":20,"time":"${TIME}"}}`);
  assert.deepEqual([active.kind, active.collection], ['account', null]);
  const statuses = ['deactivated', 'takendown', 'suspended', 'deleted', 'desynchronized', 'throttled', 'some-future-status'];
  for (const [i, status] of statuses.entries()) {
    const entry = only(buildEvents(messageOf(accountFrame({ seq: 21 + i, did: DID, active: false, status, time: TIME })), clock).entries);
    assert.equal(
      entry.json.toString(),
      `{"did":"${DID}","time_us":${1764072000000001 + i},"kind":"account","account":{"active":false,"did":"${DID}","seq":${21 + i},"status":"${status}","time":"${TIME}"}}`,
    );
  }
});

test('time_us is strictly increasing across the ops of one multi-op commit, and across messages', () => {
  // A frozen wall clock is the worst case: every op must still get its own, larger time_us.
  const clock = frozenClock(1_000_000);
  const ops = Array.from({ length: 12 }, (_, i) => ({ action: 'create' as const, path: `app.bsky.graph.follow/3lbv2xh5u3s${i.toString().padStart(2, '2')}`, record: { $type: 'app.bsky.graph.follow', subject: `did:plc:${i}` } }));
  const first = buildEvents(messageOf(commitFrame({ seq: 1, repo: DID, rev: tidFor(1), ops })), clock).entries;
  const second = buildEvents(messageOf(identityFrame({ seq: 2, did: DID })), clock).entries;
  const times = [...first, ...second].map((e) => e.timeUs);
  assert.deepEqual(times, Array.from({ length: 13 }, (_, i) => 1_000_000 + i));
  for (const entry of [...first, ...second]) assert.equal(JSON.parse(entry.json.toString()).time_us, entry.timeUs);
});

test('an op whose record is not a valid record is dropped as bad_record and takes no time_us', () => {
  const message = messageOf(
    commitFrame({
      seq: 3,
      repo: DID,
      rev: tidFor(3),
      ops: [
        { action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s22', record: { text: 'no $type' } },
        { action: 'create', path: 'app.bsky.feed.post/3lbv2xh5u3s23', record: { $type: 'app.bsky.feed.post', ratio: 0.5 } },
        { action: 'create', path: 'app.bsky.feed.like/3lbv2xh5u3s24', record: LIKE },
      ],
    }),
  );
  const { entries, drops } = buildEvents(message, frozenClock(500));
  assert.deepEqual(drops.map((d) => [d.reason, d.path]), [
    ['bad_record', 'app.bsky.feed.post/3lbv2xh5u3s22'],
    ['bad_record', 'app.bsky.feed.post/3lbv2xh5u3s23'],
  ]);
  assert.deepEqual(entries.map((e) => [e.timeUs, e.collection]), [[500, 'app.bsky.feed.like']]);
});

test('drops found while parsing the commit stay on the message (the reader reports them), not among the built events\' drops', () => {
  const bogus = cborBlock({ $type: 'app.bsky.feed.like', n: 1 });
  const message = messageOf(
    commitFrame({
      seq: 4,
      repo: DID,
      rev: tidFor(4),
      ops: [
        { action: 'create', path: 'app.bsky.feed.like/3lbv2xh5u3s25', record: LIKE },
        { action: 'delete', path: 'no-slash-here' },
      ],
      extraBlocks: [bogus],
    }),
  );
  assert.ok(message.type === 'commit');
  assert.deepEqual(message.drops.map((d) => d.reason), ['bad_path']);
  const { entries, drops } = buildEvents(message, frozenClock());
  assert.equal(entries.length, 1);
  assert.deepEqual(drops, []);
});

test('strings from upstream are JSON-escaped in the event', () => {
  const time = 'odd "time" \\ value';
  const entry = only(buildEvents(messageOf(identityFrame({ seq: 5, did: DID, handle: 'a"b', time })), frozenClock()).entries);
  const parsed = JSON.parse(entry.json.toString());
  assert.equal(parsed.identity.handle, 'a"b');
  assert.equal(parsed.identity.time, time);
});

test('CursorClock issues max(now, last + 1)', () => {
  let now = 100;
  const clock = new CursorClock(0, () => now);
  assert.equal(clock.next(), 100);
  assert.equal(clock.next(), 101);
  now = 500;
  assert.equal(clock.next(), 500);
  assert.equal(clock.lastIssued, 500);
});

test('CursorClock never goes backwards when the wall clock steps back', () => {
  let now = 1_000;
  const clock = new CursorClock(0, () => now);
  const issued = [clock.next()];
  now = 10; // NTP step back
  for (let i = 0; i < 5; i++) issued.push(clock.next());
  now = 2_000;
  issued.push(clock.next());
  assert.deepEqual(issued, [1_000, 1_001, 1_002, 1_003, 1_004, 1_005, 2_000]);
});

test('CursorClock starts above a recovered value even if the wall clock is behind it', () => {
  const recovered = 5_000_000;
  const clock = new CursorClock(recovered, () => 1_000);
  assert.equal(clock.lastIssued, recovered);
  assert.equal(clock.next(), recovered + 1);
  const ahead = new CursorClock(recovered, () => recovered + 10);
  assert.equal(ahead.next(), recovered + 10);
});

test('the default CursorClock reads the wall clock in microseconds', () => {
  // Units, not timing: microseconds since the epoch are within minutes of Date.now() * 1000.
  const issued = new CursorClock().next();
  assert.ok(Number.isSafeInteger(issued));
  assert.ok(Math.abs(issued - Date.now() * 1000) < 300_000_000, `${issued} is not now in microseconds`);
});
