// Backfill end to end: a real PLC + PDS, accounts with hundreds of records across collections,
// contrail as a child process resolving DIDs through the real PLC and fetching the real PDS's
// getRepo (through a front that passes everything on, except for repos told to misbehave). What a
// backfilling subscriber receives is compared with the PDS's own com.atproto.repo.listRecords
// (every record, exact CIDs and JSON); writes made while the backfill runs must arrive exactly
// once afterwards (or, when the snapshot already has them, not at all), leaving the subscriber
// with exactly the PDS's state; a repo the PDS took down or deleted, a CAR cut short and a PDS
// that never answers each end that repo's backfill with its reason while its live events flow.
// contrail runs with --verify signatures, so every snapshot's commit signature is checked
// against the key the real PLC holds.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SENTINEL_COLLECTION, createAccounts, phaseOne } from './lib/activity.mjs';
import { startPdsFront } from './lib/pds-front.mjs';
import { startStack } from './lib/stack.mjs';
import { RawSubscriber, subscribeUrl } from './lib/subscribe.mjs';

const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.feed.repost', 'app.bsky.graph.follow', SENTINEL_COLLECTION];
const ADMIN_AUTH = `Basic ${Buffer.from('admin:e2e-admin-password').toString('base64')}`; // lib/network.mjs's PDS

/** `count` creates spread over COLLECTIONS, in applyWrites batches of 100 (one commit each). */
async function writeMany(user, others, count) {
  let n = 0;
  while (n < count) {
    const writes = [];
    for (; writes.length < 100 && n < count; n++) {
      const collection = COLLECTIONS[n % COLLECTIONS.length];
      const other = others[n % others.length];
      const createdAt = new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString();
      const subject = { uri: `at://${other.did}/app.bsky.feed.post/3l${String(n).padStart(11, '2').replace(/[01]/g, '2')}`, cid: 'bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454' };
      const value =
        collection === 'app.bsky.feed.post'
          ? { $type: collection, text: `bulk post ${n} by ${user.name} 🚀 <&>`, langs: ['en'], createdAt }
          : collection === 'app.bsky.graph.follow'
            ? { $type: collection, subject: other.did, createdAt }
            : collection === SENTINEL_COLLECTION
              ? { $type: collection, n, nested: { list: [n, -n], ok: n % 2 === 0, none: null }, bytes: { $bytes: 'aGVsbG8' } }
              : { $type: collection, subject, createdAt };
      writes.push({ $type: 'com.atproto.repo.applyWrites#create', collection, value });
    }
    await user.agent.com.atproto.repo.applyWrites({ repo: user.did, writes });
  }
}

/**
 * Every record of the repo as the PDS lists it, in its own JSON (fetched raw: an API client would
 * turn blobs and bytes into objects): "collection/rkey" → {cid, value}.
 */
async function listAll(pdsUrl, did) {
  const xrpc = async (method, params) => {
    const response = await fetch(`${pdsUrl}/xrpc/${method}?${new URLSearchParams(params)}`);
    if (response.status !== 200) throw new Error(`${method}: HTTP ${response.status} ${await response.text()}`);
    return response.json();
  };
  const { collections } = await xrpc('com.atproto.repo.describeRepo', { repo: did });
  const records = new Map();
  for (const collection of collections) {
    let cursor;
    do {
      const page = await xrpc('com.atproto.repo.listRecords', { repo: did, collection, limit: '100', ...(cursor ? { cursor } : {}) });
      for (const record of page.records) records.set(`${collection}/${record.uri.split('/').pop()}`, { cid: record.cid, value: record.value });
      cursor = page.records.length === 100 ? page.cursor : undefined;
    } while (cursor);
  }
  return records;
}

/** The records a subscriber holds for `did`: its backfilled creates, then every later event applied. */
function stateOf(events, did) {
  const state = new Map();
  for (const event of events) {
    if (event.did !== did || event.kind !== 'commit') continue;
    const key = `${event.commit.collection}/${event.commit.rkey}`;
    if (event.commit.operation === 'delete') state.delete(key);
    else state.set(key, { cid: event.commit.cid, value: event.commit.record });
  }
  return state;
}

function assertSameRecords(actual, expected, what) {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: the same record keys`);
  for (const [key, record] of expected) {
    assert.equal(actual.get(key).cid, record.cid, `${what}: ${key} cid`);
    assert.deepEqual(actual.get(key).value, record.value, `${what}: ${key} JSON`);
  }
}

async function admin(pdsUrl, method, body) {
  const response = await fetch(`${pdsUrl}/xrpc/${method}`, { method: 'POST', headers: { authorization: ADMIN_AUTH, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (response.status !== 200) throw new Error(`${method}: HTTP ${response.status} ${await response.text()}`);
}

const endOf = (did) => (event) => event.kind === 'backfill' && event.did === did;

describe('backfill from a real PDS', { timeout: 180_000 }, () => {
  let stack;
  let front;
  let users;
  const subscribers = [];

  before(async () => {
    stack = await startStack({
      contrailArgs: async (network) => {
        front ??= await startPdsFront(network);
        return ['--plc-url', front.plcUrl, '--allow-private-endpoints', '--backfill-cache-ttl', '1ms', '--backfill-timeout', '8s', '--verify', 'signatures'];
      },
    });
    users = await createAccounts(stack.act);
    await phaseOne(stack.act); // one of everything: blobs, facets, embeds, edits, deletes, data-model edges
    const { alice, bob, carol } = users;
    await writeMany(alice, [bob, carol], 400);
    await writeMany(bob, [alice, carol], 250);
  });

  after(async () => {
    await Promise.all(subscribers.map((s) => s.close()));
    await stack?.close();
    await front?.close();
  });

  const open = (params) => {
    const subscriber = new RawSubscriber(subscribeUrl(stack.contrail.wsUrl, params));
    subscribers.push(subscriber);
    return subscriber;
  };

  test('every record of every repo, with the exact CIDs and JSON that listRecords gives, then a complete message', async () => {
    const { alice, bob, carol } = users;
    const dids = [alice.did, bob.did, carol.did];
    const subscriber = open({ wantedDids: dids, backfill: true });
    for (const did of dids) await subscriber.waitFor(endOf(did), `the backfill of ${did}`, 60_000);
    for (const user of [alice, bob, carol]) {
      const expected = await listAll(stack.network.pdsUrl, user.did);
      const backfilled = subscriber.events.filter((e) => e.did === user.did && e.kind === 'commit');
      assert.ok(backfilled.every((e) => e.backfilled === true && e.commit.operation === 'create'));
      assert.equal(backfilled.length, expected.size, `${user.name}: one event per record`);
      assertSameRecords(stateOf(backfilled, user.did), expected, user.name);
      const complete = subscriber.events.find(endOf(user.did));
      assert.deepEqual(complete.backfill, { status: 'complete', rev: backfilled[0].commit.rev, records: expected.size });
    }
    assert.ok(subscriber.events.filter((e) => e.did === alice.did).length > 400, 'alice has hundreds of records');
  });

  test('wantedCollections: only those collections are backfilled', async () => {
    const { alice } = users;
    const subscriber = open({ wantedDids: [alice.did], wantedCollections: ['app.bsky.feed.like', 'com.example.*'], backfill: true });
    await subscriber.waitFor(endOf(alice.did), 'the backfill', 60_000);
    const expected = new Map([...(await listAll(stack.network.pdsUrl, alice.did))].filter(([key]) => key.startsWith('app.bsky.feed.like/') || key.startsWith('com.example.')));
    assertSameRecords(stateOf(subscriber.events, alice.did), expected, 'filtered');
  });

  test('writes made while the backfill runs arrive exactly once after it (or not at all when the snapshot has them)', async () => {
    const { alice, bob } = users;
    const existing = [...(await listAll(stack.network.pdsUrl, alice.did)).keys()].filter((key) => key.startsWith('com.example.thing/'));
    // A writer runs before, during and after the backfill: creates, edits of records the snapshot
    // holds, and deletes. The subscriber connects after its 10th write, so the first writes' live
    // events may still be on their way (and must be withheld, the snapshot has them); 30 more are
    // written while the backfill runs, then (once it is complete) 10 more. Each write's commit rev
    // says whether the snapshot can contain it. (The writer pauses because the PDS serves getRepo
    // slowly while the repo is being written to.)
    const writes = [];
    let subscriber;
    const api = alice.agent.com.atproto.repo;
    const write = async (i) => {
      let result;
      if (i % 4 === 3) {
        const [collection, rkey] = existing.shift().split('/');
        result = await api.deleteRecord({ repo: alice.did, collection, rkey });
        writes.push({ key: `${collection}/${rkey}`, operation: 'delete', rev: result.data.commit.rev });
      } else if (i % 4 === 2) {
        const [collection, rkey] = existing[0].split('/');
        result = await api.putRecord({ repo: alice.did, collection, rkey, record: { $type: collection, edited: i } });
        writes.push({ key: `${collection}/${rkey}`, operation: 'update', rev: result.data.commit.rev });
      } else {
        result = await api.createRecord({ repo: alice.did, collection: 'app.bsky.graph.follow', record: { $type: 'app.bsky.graph.follow', subject: bob.did, createdAt: new Date().toISOString() } });
        writes.push({ key: `app.bsky.graph.follow/${result.data.uri.split('/').pop()}`, operation: 'create', rev: result.data.commit.rev });
      }
    };
    for (let i = 0; i < 40; i++) {
      if (i === 10) {
        subscriber = open({ wantedDids: [alice.did], backfill: true });
        await subscriber.opened;
      }
      await write(i);
    }
    await subscriber.waitFor(endOf(alice.did), 'the backfill', 60_000);
    for (let i = 40; i < 50; i++) await write(i);
    const last = writes.at(-1);
    // The write's own op (the PDS may put more in its commit: a new follow of the same subject deletes the old one).
    const isLast = (e) => e.did === alice.did && e.kind === 'commit' && !e.backfilled && e.commit.rev === last.rev && `${e.commit.collection}/${e.commit.rkey}` === last.key;
    await subscriber.waitFor(isLast, 'the last write', 60_000);

    const events = subscriber.events.filter((e) => e.did === alice.did);
    const completeAt = events.findIndex(endOf(alice.did));
    const snapshotRev = events[completeAt].backfill.rev;
    assert.ok(events.slice(0, completeAt).every((e) => e.backfilled === true), 'nothing live before the snapshot is complete');
    const afterSnapshot = events.slice(completeAt + 1);
    assert.ok(afterSnapshot.every((e) => e.backfilled === undefined && e.kind === 'commit' && e.commit.rev > snapshotRev), 'after it: only live commits newer than the snapshot');
    const seen = afterSnapshot.map((e) => `${e.commit.rev} ${e.commit.operation} ${e.commit.collection}/${e.commit.rkey}`);
    assert.equal(new Set(seen).size, seen.length, 'no op twice');
    const writeRevs = new Set(writes.map((w) => w.rev));
    assert.deepEqual(seen.filter((op) => !writeRevs.has(op.split(' ')[0])), [], 'no event of a commit other than these writes');
    for (const write of writes) {
      const expected = write.rev > snapshotRev ? [`${write.rev} ${write.operation} ${write.key}`] : [];
      assert.deepEqual(seen.filter((op) => op === `${write.rev} ${write.operation} ${write.key}`), expected, `${write.operation} ${write.key} at ${write.rev} (snapshot at ${snapshotRev})`);
    }
    assertSameRecords(stateOf(events, alice.did), await listAll(stack.network.pdsUrl, alice.did), 'state after the writes');
    const inSnapshot = writes.filter((w) => w.rev <= snapshotRev).length;
    console.log(`# of ${writes.length} writes (10 before connecting), ${inSnapshot} were in the snapshot and ${writes.length - inSnapshot} came after it`);
  });

  test('a repo taken down or deleted on the PDS, a CAR cut short, a PDS that never answers: each backfill ends with its reason, the others complete', async () => {
    const act = stack.act;
    const [takendown, deleted, truncated, stalled] = [await act.createAccount('dave'), await act.createAccount('erin'), await act.createAccount('frank'), await act.createAccount('gina')];
    for (const user of [takendown, deleted, truncated, stalled]) await writeMany(user, [users.alice], 30);
    await admin(stack.network.pdsUrl, 'com.atproto.admin.updateSubjectStatus', { subject: { $type: 'com.atproto.admin.defs#repoRef', did: takendown.did }, takedown: { applied: true, ref: 'e2e' } });
    await admin(stack.network.pdsUrl, 'com.atproto.admin.deleteAccount', { did: deleted.did });
    front.behaviour.set(truncated.did, 'truncate');
    front.behaviour.set(stalled.did, 'stall');

    const { carol } = users;
    const subscriber = open({ wantedDids: [takendown.did, deleted.did, truncated.did, stalled.did, carol.did], backfill: true });
    const reasons = {};
    for (const user of [takendown, deleted, truncated, stalled, carol]) {
      await subscriber.waitFor(endOf(user.did), `the end of ${user.name}'s backfill`, 60_000);
      reasons[user.name] = subscriber.events.find(endOf(user.did)).backfill;
    }
    assert.equal(reasons.dave.reason, 'repo_takendown', JSON.stringify(reasons.dave));
    assert.equal(reasons.erin.reason, 'repo_not_found', JSON.stringify(reasons.erin));
    assert.ok(['bad_car', 'missing_block'].includes(reasons.frank.reason), JSON.stringify(reasons.frank));
    assert.equal(reasons.gina.reason, 'timeout', JSON.stringify(reasons.gina));
    assert.equal(reasons.carol.status, 'complete');
    for (const user of [takendown, deleted, truncated, stalled]) {
      assert.equal(reasons[user.name].status, 'failed');
      assert.ok(!subscriber.events.some((e) => e.did === user.did && e.backfilled), `nothing backfilled for ${user.name}`);
    }
    // Their live events flow: the stalled repo's next write reaches the subscriber.
    await stalled.agent.com.atproto.repo.createRecord({ repo: stalled.did, collection: SENTINEL_COLLECTION, rkey: 'after-the-failure', record: { $type: SENTINEL_COLLECTION, n: 1 } });
    await subscriber.waitFor((e) => e.did === stalled.did && e.kind === 'commit' && e.commit.rkey === 'after-the-failure', 'the live write after the failure', 30_000);
  });
});
