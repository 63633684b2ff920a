/**
 * Real firehose frames from the live network decode to the events Jetstream v1 would emit:
 * the six binary frames captured by rsky, and the indigo DAG-JSON commit bodies and relay
 * scenarios (converted to frames here). Records are checked against an independent decode of
 * the same blocks with @ipld/car + @ipld/dag-cbor, and a few values are pinned by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { CarBufferReader } from '@ipld/car/buffer-reader';
import * as dagCbor from '@ipld/dag-cbor';
import { decodeFirst } from 'cborg';
import { CID } from 'multiformats/cid';
import { CursorClock } from '../src/events/clock.ts';
import { buildEvents } from '../src/events/entry.ts';
import { isTid } from '../src/atproto/index.ts';
import { DropError } from '../src/upstream/drop.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../src/upstream/messages.ts';
import { fromDagJson, toDagJson } from './support/dag-json.ts';
import { fixturePath, readFixture, readJsonFixture } from './support/fixtures.ts';
import { encodeFrame } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { objectKeyLists } from './support/json-keys.ts';
import { openIngester, storedEvents } from './support/upstream-harness.ts';

const RSKY = 'samples/rsky/rsky-relay/tests/interop/frames-bin/';
const INDIGO_COMMITS = 'samples/indigo/atproto/repo/testdata/';
const INDIGO_SCENARIOS = 'samples/indigo/cmd/relay/testing/testdata/';
const RELAY = 'wss://relay.test/xrpc/com.atproto.sync.subscribeRepos';

type EventMessage = Extract<UpstreamMessage, { type: 'commit' | 'identity' | 'account' | 'sync' }>;

function decode(bytes: Uint8Array): UpstreamMessage {
  return parseMessage(decodeFrame(bytes, 5 * 1024 * 1024));
}

/** The message, or undefined for a frame dropped as malformed (as the reader drops it). */
function decodeOrDrop(bytes: Uint8Array): UpstreamMessage | undefined {
  try {
    return decode(bytes);
  } catch (err) {
    if (err instanceof DropError) return undefined;
    throw err;
  }
}

function eventsOf(message: EventMessage, now = 1_764_072_000_000_000): Array<Record<string, any>> {
  const { entries, drops } = buildEvents(message, new CursorClock(0, () => now));
  assert.deepEqual(drops, []);
  return entries.map((entry) => {
    const json = entry.json.toString();
    const keys = objectKeyLists(json);
    assert.deepEqual(keys[0], ['did', 'time_us', 'kind', message.type]);
    return JSON.parse(json);
  });
}

/** The frame body as the reference libraries decode it, and its CAR's blocks by CID. */
function referenceDecode(bytes: Uint8Array): { body: Record<string, any>; blocks: Map<string, Uint8Array> } {
  const [, rest] = decodeFirst(bytes, dagCbor.decodeOptions);
  const body = dagCbor.decode(rest) as Record<string, any>;
  const blocks = new Map<string, Uint8Array>();
  if (body.blocks instanceof Uint8Array) {
    for (const block of CarBufferReader.fromBytes(body.blocks).blocks()) blocks.set(block.cid.toString(), block.bytes);
  }
  return { body, blocks };
}

/**
 * Every op of a commit frame became one event in order: operation, collection, rkey, the op's
 * CID, and the record as the reference decode of its block reads it (absent for deletes).
 */
function assertCommitEvents(bytes: Uint8Array, events: Array<Record<string, any>>): void {
  const { body, blocks } = referenceDecode(bytes);
  assert.equal(events.length, body.ops.length);
  for (const [i, op] of (body.ops as Array<{ action: string; path: string; cid: CID | null }>).entries()) {
    const event = events[i];
    assert.ok(event, `an event for op #${i}`);
    const [collection, rkey] = op.path.split('/');
    assert.equal(event.did, body.repo);
    assert.equal(event.kind, 'commit');
    assert.deepEqual(
      { rev: event.commit.rev, operation: event.commit.operation, collection: event.commit.collection, rkey: event.commit.rkey },
      { rev: body.rev, operation: op.action, collection, rkey },
    );
    if (op.action === 'delete') {
      assert.deepEqual(Object.keys(event.commit), ['rev', 'operation', 'collection', 'rkey']);
      continue;
    }
    assert.deepEqual(Object.keys(event.commit), ['rev', 'operation', 'collection', 'rkey', 'record', 'cid']);
    assert.equal(event.commit.cid, op.cid!.toString());
    const block = blocks.get(op.cid!.toString());
    assert.ok(block, `the CAR has the block for ${op.path}`);
    assert.ok(createHash('sha256').update(block).digest().equals(Buffer.from(op.cid!.multihash.digest)));
    assert.deepEqual(event.commit.record, toDagJson(dagCbor.decode(block)));
    assert.equal(event.commit.record.$type, collection);
  }
}

const rskyFrame = (name: string) => new Uint8Array(readFixture(RSKY + name));

test('rsky 01: a like create, field by field', () => {
  const bytes = rskyFrame('01-create-33871058338.bin');
  const message = decode(bytes);
  assert.equal(message.type, 'commit');
  assert.equal(message.seq, 33871058338);
  const events = eventsOf(message);
  assertCommitEvents(bytes, events);
  // Pinned by hand from the frame.
  assert.equal(
    JSON.stringify(events[0]),
    '{"did":"did:plc:mnqp4lhpaxelb3x3ugzdt4y7","time_us":1764072000000000,"kind":"commit","commit":{"rev":"3mw73ekiv7l25","operation":"create",' +
      '"collection":"app.bsky.feed.like","rkey":"3mw73ekioet25","record":{"$type":"app.bsky.feed.like","createdAt":"2026-09-23T15:42:34.983Z",' +
      '"subject":{"cid":"bafyreigsurgdk3bfyh6ehghe5qdsc45qct6ic2lpn4gvxsrjvsaoojxtdy","uri":"at://did:plc:x4qyokjtdzgl7gmqhsw4ajqj/app.bsky.feed.post/3mw6z3wmlv22u"}},' +
      '"cid":"bafyreiaupu2oy5iop4dq4hrfxnsr4ysrtnxzf2szwo5w6a2h3djwquedyq"}}',
  );
});

test('rsky 02: a post update from a bridged repo (since null, +00:00 time), HTML escaped as Go does', () => {
  const bytes = rskyFrame('02-update-33871058369.bin');
  const message = decode(bytes);
  assert.equal(message.type, 'commit');
  assert.equal(message.time, '2026-09-23T15:42:28.815396+00:00');
  const { entries } = buildEvents(message, new CursorClock(0, () => 1));
  const json = entries[0]!.json.toString();
  const events = [JSON.parse(json)];
  assertCommitEvents(bytes, events);
  const { commit } = events[0];
  assert.equal(events[0].did, 'did:plc:jwmmoa6rkmcx6exleysr3zd7');
  assert.deepEqual([commit.rev, commit.operation, commit.collection, commit.rkey], ['2222242heo522', 'update', 'app.bsky.feed.post', '3mw73bzzywpo2']);
  assert.equal(commit.cid, 'bafyreifawmjcgmqohmsvwxvwmtagn563zb64jwd5jadx24gqa4lpcnfcf4');
  assert.deepEqual(Object.keys(commit.record), ['$type', 'bridgyOriginalText', 'bridgyOriginalUrl', 'createdAt', 'facets', 'langs', 'text']);
  assert.deepEqual(commit.record.langs, ['en']);
  assert.deepEqual(commit.record.facets[0].index, { byteEnd: 17, byteStart: 0 });
  assert.ok(commit.record.bridgyOriginalText.startsWith('<p><a href="https://sfba.social/tags/ScribesAndMakers"'));
  // The bytes carry the markup escaped, as Jetstream's Go encoder writes it.
  assert.ok(json.includes('"bridgyOriginalText":"\\u003cp\\u003e\\u003ca href=\\"https://sfba.social/tags/ScribesAndMakers\\"'));
  assert.ok(!/[<>&]/.test(json));
});

test('rsky 03: a like delete (ops[].prev set, cid null) carries no record and no cid', () => {
  const bytes = rskyFrame('03-delete-33871058342.bin');
  const message = decode(bytes);
  assert.equal(message.type, 'commit');
  const events = eventsOf(message);
  assertCommitEvents(bytes, events);
  assert.equal(
    JSON.stringify(events[0]),
    '{"did":"did:plc:oniyqv3gpmq5qglkk77d4hfs","time_us":1764072000000000,"kind":"commit","commit":{"rev":"3mw73ekk66t2j","operation":"delete","collection":"app.bsky.feed.like","rkey":"3mw73ehxlmh2z"}}',
  );
});

/**
 * A #sync frame's event: the upstream object (blocks as unpadded-base64 $bytes that decode to
 * the exact CAR) and `data`, the MST root of the commit the CAR's root names, decoded here with
 * the reference libraries.
 */
function assertSyncEvent(bytes: Uint8Array, message: Extract<UpstreamMessage, { type: 'sync' }>): Record<string, any> {
  const { body, blocks } = referenceDecode(bytes);
  const [root] = CarBufferReader.fromBytes(body.blocks).getRoots();
  assert.ok(root, "the #sync's CAR names its commit");
  const commit = dagCbor.decode(blocks.get(root.toString())!) as { data: CID };
  const [event] = eventsOf(message);
  assert.ok(event);
  assert.deepEqual(Object.keys(event.sync), ['blocks', 'data', 'did', 'rev', 'seq', 'time']);
  assert.deepEqual(event.sync, { blocks: event.sync.blocks, data: commit.data.toString(), did: body.did, rev: body.rev, seq: body.seq, time: body.time });
  assert.match(event.sync.blocks.$bytes, /^[A-Za-z0-9+/]+$/, 'standard base64, unpadded');
  assert.deepEqual(Buffer.from(event.sync.blocks.$bytes, 'base64'), Buffer.from(body.blocks));
  return event;
}

test('rsky 04: #sync becomes a sync event: did, rev, the commit\'s data CID, and the upstream object', () => {
  const bytes = rskyFrame('04-sync-33871059687.bin');
  const message = decode(bytes);
  assert.equal(message.type, 'sync');
  const event = assertSyncEvent(bytes, message);
  assert.equal(event.did, 'did:plc:iybszqugl5vnzy55j2nz5tn5');
  assert.equal(event.kind, 'sync');
  assert.deepEqual({ ...event.sync, blocks: undefined }, {
    blocks: undefined,
    data: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm',
    did: 'did:plc:iybszqugl5vnzy55j2nz5tn5',
    rev: '3mw73emtrxr2p',
    seq: 33871059687,
    time: '2026-09-23T15:42:38.210Z',
  });
});

test('rsky 05 and 06: identity without a handle, account active=true without status', () => {
  const identity = decode(rskyFrame('05-identity-33871059684.bin'));
  assert.equal(identity.type, 'identity');
  assert.equal(
    JSON.stringify(eventsOf(identity)[0]),
    '{"did":"did:plc:iybszqugl5vnzy55j2nz5tn5","time_us":1764072000000000,"kind":"identity","identity":{"did":"did:plc:iybszqugl5vnzy55j2nz5tn5","seq":33871059684,"time":"2026-09-23T15:42:38.209Z"}}',
  );
  const account = decode(rskyFrame('06-account-33871059685.bin'));
  assert.equal(account.type, 'account');
  assert.equal(
    JSON.stringify(eventsOf(account)[0]),
    '{"did":"did:plc:iybszqugl5vnzy55j2nz5tn5","time_us":1764072000000000,"kind":"account","account":{"active":true,"did":"did:plc:iybszqugl5vnzy55j2nz5tn5","seq":33871059685,"time":"2026-09-23T15:42:38.209Z"}}',
  );
});

test('rsky: all six through the Ingester into a real store: six events in seq order, cursor at the newest seq', async (t) => {
  const dir = tempDir();
  const harness = openIngester(dir.path, RELAY);
  t.after(async () => {
    await harness.close();
    dir.remove();
  });
  const names = readdirSync(fixturePath(RSKY)).filter((name) => name.endsWith('.bin'));
  assert.equal(names.length, 6);
  // In seq order, as a relay sends them (the file names number them by kind).
  const messages = names.map((name) => decode(rskyFrame(name))).sort((a, b) => seqOf(a) - seqOf(b));
  for (const message of messages) harness.ingester.handle(message);
  await harness.ingester.flush();
  const stored = storedEvents(harness.store);
  assert.deepEqual(
    stored.map((e) => `${e.kind}:${e.commit?.operation ?? e[e.kind].seq}`),
    ['commit:create', 'commit:delete', 'commit:update', 'identity:33871059684', 'account:33871059685', 'sync:33871059687'],
  );
  const times = stored.map((e) => e.time_us);
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
  assert.equal(new Set(times).size, times.length);
  assert.deepEqual(harness.store.upstreamCursor, { url: RELAY, seq: 33871059687 });
});

function seqOf(message: UpstreamMessage): number {
  assert.ok('seq' in message);
  return message.seq;
}

test('indigo commit bodies: every op becomes the expected event', () => {
  const files = readdirSync(fixturePath(INDIGO_COMMITS)).filter((name) => name.endsWith('.json'));
  assert.equal(files.length, 4);
  let total = 0;
  for (const file of files) {
    const body = readJsonFixture<Record<string, any>>(INDIGO_COMMITS + file);
    const bytes = encodeFrame({ op: 1, t: '#commit' }, fromDagJson(body));
    const message = decode(bytes);
    assert.equal(message.type, 'commit', file);
    assert.equal(message.seq, body.seq);
    const events = eventsOf(message);
    assertCommitEvents(bytes, events);
    total += events.length;
  }
  assert.equal(total, 45);
  // Pinned by hand: the profile create with an avatar blob.
  const body = readJsonFixture<Record<string, any>>(INDIGO_COMMITS + 'firehose_commit_4623075231.json');
  const [profile] = eventsOf(decode(encodeFrame({ op: 1, t: '#commit' }, fromDagJson(body))) as EventMessage);
  assert.ok(profile);
  assert.deepEqual(profile.commit, {
    rev: '3lhhxizu5wr2d',
    operation: 'create',
    collection: 'app.bsky.actor.profile',
    rkey: 'self',
    record: {
      $type: 'app.bsky.actor.profile',
      avatar: { $type: 'blob', ref: { $link: 'bafkreibwhdjd2rq4wfmeh4ycg2om46c7ver4f22gh7xzxnh4ovo2swanlq' }, mimeType: 'image/jpeg', size: 15444 },
      createdAt: '2025-02-06T01:43:21.299Z',
      displayName: '',
    },
    cid: 'bafyreide63hdwry7d7hhs3eyrzab2ntcobdnhjmdvqwpsidg6ctil6ostq',
  });
});

interface Scenario {
  messages: Array<{ frame: { header: { op: number; t?: string }; body: Record<string, any> }; drop: boolean; invalid: boolean }>;
}

function scenarioFrames(file: string): Array<{ bytes: Uint8Array; drop: boolean; body: Record<string, any>; t?: string }> {
  return readJsonFixture<Scenario>(INDIGO_SCENARIOS + file).messages.map(({ frame, drop }) => ({
    bytes: encodeFrame(frame.header, fromDagJson(frame.body)),
    drop,
    body: frame.body,
    t: frame.header.t,
  }));
}

test('indigo relay scenarios: every frame decodes to the expected message and events', () => {
  const files = readdirSync(fixturePath(INDIGO_SCENARIOS)).filter((name) => name.endsWith('.json'));
  assert.equal(files.length, 7);
  const kinds = new Map<string, number>();
  for (const file of files) {
    for (const { bytes, body, t, drop } of scenarioFrames(file)) {
      if (t === '#commit' && !isTid(body.rev)) {
        // rev_ordering's rev 3lmxjza3nva00 ('0' is no TID character): a relay drops it, and contrail drops it as malformed.
        assert.ok(drop, `${file}: a relay passes the rev ${body.rev}`);
        assert.throws(() => decode(bytes), (err) => err instanceof DropError && err.reason === 'bad_field', `${file}: rev ${body.rev}`);
        continue;
      }
      const message = decode(bytes);
      kinds.set(message.type, (kinds.get(message.type) ?? 0) + 1);
      assert.equal(`#${message.type}`, t, file);
      switch (message.type) {
        case 'commit':
          assertCommitEvents(bytes, eventsOf(message));
          break;
        case 'identity': {
          const [event] = eventsOf(message);
          assert.ok(event);
          assert.deepEqual(event.identity, { did: body.did, ...(body.handle ? { handle: body.handle } : {}), seq: body.seq, time: body.time });
          break;
        }
        case 'account': {
          const [event] = eventsOf(message);
          assert.ok(event);
          assert.deepEqual(event.account, { active: body.active, did: body.did, seq: body.seq, ...(body.status ? { status: body.status } : {}), time: body.time });
          assert.deepEqual(Object.keys(event.account), ['active', 'did', 'seq', ...(body.status ? ['status'] : []), 'time']);
          break;
        }
        case 'sync':
          assertSyncEvent(bytes, message);
          break;
        default:
          assert.fail(`unexpected ${message.type} in ${file}`);
      }
    }
  }
  assert.deepEqual(Object.fromEntries(kinds), { identity: 3, account: 6, sync: 1, commit: 24 });
});

/** The scenario's frames through a real Ingester and store; what got stored, as "seq:kind" labels. */
async function ingestScenario(file: string, t: { after: (fn: () => Promise<void>) => void }): Promise<{ stored: string[]; frames: ReturnType<typeof scenarioFrames> }> {
  const dir = tempDir();
  const harness = openIngester(dir.path, RELAY);
  t.after(async () => {
    await harness.close();
    dir.remove();
  });
  const frames = scenarioFrames(file);
  for (const { bytes } of frames) {
    const message = decodeOrDrop(bytes);
    if (message) harness.ingester.handle(message);
  }
  await harness.ingester.flush();
  const stored = storedEvents(harness.store).map((event) => (event.commit ? `commit:${event.commit.rev}` : `${event.kind}:${event[event.kind].seq}`));
  return { stored, frames };
}

const label = ({ body, t }: { body: Record<string, any>; t?: string }) => (t === '#commit' ? `commit:${body.rev}` : `${t!.slice(1)}:${body.seq}`);

test('indigo rev_ordering through the Ingester: a commit whose rev is not newer is skipped, exactly where a relay drops it', async (t) => {
  const { stored, frames } = await ingestScenario('rev_ordering.json', t);
  assert.deepEqual(frames.map((f) => f.drop), [false, true, true, false]);
  assert.deepEqual(stored, frames.filter((f) => !f.drop).map(label));
  assert.deepEqual(stored, ['commit:3lmxjza3nva27', 'commit:3lmxjzbfkb522']);
});

test('indigo seq_ordering through the Ingester: a repeated or older seq is skipped, exactly where a relay drops it', async (t) => {
  const { stored, frames } = await ingestScenario('seq_ordering.json', t);
  assert.deepEqual(frames.map((f) => f.drop), [false, true, true, false]);
  assert.deepEqual(stored, frames.filter((f) => !f.drop).map(label));
});

test('indigo scenarios through the Ingester: everything a relay passes is stored (contrail checks no signatures or hosting status)', async (t) => {
  for (const file of ['account_lifecycle.json', 'deactivation.json', 'legacy.json', 'post_lifecycle.json', 'post_lifecycle_legacy.json']) {
    const { stored, frames } = await ingestScenario(file, t);
    // One event per op of a commit, one per identity, account or #sync frame.
    const passed = frames.filter((f) => !f.drop).flatMap((f) => Array<string>(f.body.ops?.length ?? 1).fill(label(f)));
    assert.deepEqual(stored.filter((l) => passed.includes(l)), passed, file);
  }
});
