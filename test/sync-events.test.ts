/**
 * Upstream #sync frames as `sync` events, on real sockets over both transports: stored with a
 * time_us and seq like every event; v1 /subscribe, /stream and /stream.ndjson send them only to
 * a client that asks (`wantedKinds`, also in options_update), so a v1 client sees nothing new;
 * v2's `kinds=sync` (and an unfiltered v2 stream) gets `#sync` frames; replay and live alike.
 * Filters: a sync event passes wantedDids by its DID and every collection filter. The real #sync
 * frame captured by rsky rides along (given new seqs). Malformed #sync frames are counted drops;
 * --ingest-collections keeps #sync; under --verify only a #sync that verifies becomes an event.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { CarBufferReader } from '@ipld/car/buffer-reader';
import * as dagCbor from '@ipld/dag-cbor';
import { decodeFirst } from 'cborg';
import type { CID } from 'multiformats/cid';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { readFixture } from './support/fixtures.ts';
import { cborBlock, carOf, encodeFrame, tidFor } from './support/frames.ts';
import type { tempDir } from './support/gateway.ts';
import { HttpStream, StreamRefused } from './support/http-stream.ts';
import { SignedRepo, commitFrameOf, syncFrameOf, type CommitBody } from './support/signed-repo.ts';
import {
  ALICE,
  ALL_KINDS_QUERY,
  BOB,
  CAROL,
  LIKE,
  POST,
  SUBSCRIBE_EVENTS,
  Subscription,
  Upstream,
  httpGet,
  queryFor,
  readWholeStream,
  settleSubscribers,
  startRelayGateway,
  stopRelayGateway,
  upgradeRequest,
  waitUntil,
  wants,
  withGateway,
  type FilterSpec,
  type StoredEvent,
} from './support/subscribe-client.ts';
import { withBadSignature } from './support/tamper.mjs';
import { transportsUnderTest } from './support/transports.ts';
import { v1FromV2, v2Expected } from './support/v2-frames.ts';

/** The real #sync frame rsky captured from the network, given `seq` (its CAR and commit untouched). */
function realSyncFrame(seq: number): Uint8Array {
  const bytes = readFixture('samples/rsky/rsky-relay/tests/interop/frames-bin/04-sync-33871059687.bin');
  const [header, rest] = decodeFirst(bytes, dagCbor.decodeOptions);
  return encodeFrame(header as object, { ...(dagCbor.decode(rest) as object), seq });
}
const REAL_SYNC_DID = 'did:plc:iybszqugl5vnzy55j2nz5tn5';

const syncs = (events: StoredEvent[]) => events.filter((e) => e.kind === 'sync');

/** What a sync event says, checked against its frame's CAR with the reference libraries. */
function assertSyncShape(raw: string): void {
  const event = JSON.parse(raw);
  assert.deepEqual(Object.keys(event), ['did', 'time_us', 'kind', 'sync']);
  assert.deepEqual(Object.keys(event.sync), ['blocks', 'data', 'did', 'rev', 'seq', 'time']);
  const car = CarBufferReader.fromBytes(Buffer.from(event.sync.blocks.$bytes, 'base64'));
  const [root] = car.getRoots();
  assert.ok(root, 'the CAR names its commit');
  const commit = dagCbor.decode(car.get(root)!.bytes) as { did: string; rev: string; data: CID };
  assert.deepEqual([commit.did, commit.rev, commit.data.toString()], [event.did, event.sync.rev, event.sync.data]);
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`#sync events over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;

    before(async () => {
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport }));
      up.synthetic(60, 21, 10);
      up.create(ALICE, POST);
      up.sync(ALICE);
      up.synthetic(60, 22, 10);
      up.frame(realSyncFrame);
      up.sync(BOB);
      up.create(BOB, LIKE);
      await up.settle();
    });

    afterEach(async () => {
      await Subscription.closeAll();
      HttpStream.closeAll();
    });

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('replay: v1 clients see nothing new; wantedKinds=sync adds the sync events in place, on /subscribe, /stream and /stream.ndjson', async () => {
      const all = await readWholeStream(gateway.port, ALL_KINDS_QUERY);
      assert.deepEqual(
        syncs(all).map((e) => e.did),
        [ALICE, REAL_SYNC_DID, BOB],
      );
      for (const event of syncs(all)) assertSyncShape(event.raw);
      const times = all.map((e) => e.timeUs);
      assert.deepEqual(times, [...times].sort((a, b) => a - b), 'a sync takes its time_us in upstream order, like every event');
      const v1 = await readWholeStream(gateway.port);
      assert.deepEqual(v1, all.filter((e) => e.kind !== 'sync'), 'without wantedKinds: exactly the other events');

      for (const path of ['/stream', '/stream.ndjson'] as const) {
        const plain = await HttpStream.open(gateway.port, path, `cursor=0&limit=${v1.length}`);
        await plain.ended;
        assert.deepEqual(plain.events, v1.map((e) => e.raw), `${path} without wantedKinds`);
        const withSync = await HttpStream.open(gateway.port, path, `cursor=0&limit=${all.length}&${ALL_KINDS_QUERY}`);
        await withSync.ended;
        assert.deepEqual(withSync.events, all.map((e) => e.raw), `${path} with every kind`);
        const onlySync = await HttpStream.open(gateway.port, path, 'cursor=0&limit=3&wantedKinds=sync');
        await onlySync.ended;
        assert.deepEqual(onlySync.events, syncs(all).map((e) => e.raw), `${path}?wantedKinds=sync`);
      }
      const sse = await HttpStream.open(gateway.port, '/stream', 'cursor=0&limit=3&wantedKinds=sync');
      await sse.ended;
      assert.deepEqual(sse.messages.filter((m) => m.event === undefined).map((m) => Number(m.id)), syncs(all).map((e) => e.timeUs), 'SSE ids are the sync events’ time_us');
    });

    test('filters: wantedDids passes a sync by its DID, every collection filter passes it; replay then live', async () => {
      const all = await readWholeStream(gateway.port, ALL_KINDS_QUERY);
      const filters: FilterSpec[] = [
        { wantedKinds: ['sync'] },
        { wantedKinds: ['sync'], wantedDids: [BOB] },
        { wantedKinds: ['commit', 'sync'], wantedCollections: [LIKE] },
        { wantedKinds: ['commit', 'identity', 'account', 'sync'], wantedCollections: ['app.bsky.graph.*'], wantedDids: [ALICE, CAROL] },
        { wantedKinds: ['identity', 'account'] },
        {},
      ];
      const subscriptions = await Promise.all(filters.map((filter) => Subscription.open(gateway.port, queryFor(filter, { cursor: 0 }))));
      up.sync(CAROL);
      up.identity(CAROL, 'carol.test');
      up.create(CAROL, 'app.bsky.graph.follow');
      up.sync(ALICE);
      up.account(ALICE, true);
      up.create(ALICE, LIKE);
      await up.settle();
      const whole = await readWholeStream(gateway.port, ALL_KINDS_QUERY);
      assert.equal(syncs(whole).length, syncs(all).length + 2);
      await settleSubscribers(gateway, subscriptions);
      filters.forEach((filter, i) => {
        const expected = whole.filter((e) => wants(filter, e)).map((e) => e.raw);
        assert.ok(expected.length > 0, JSON.stringify(filter));
        assert.deepEqual(subscriptions[i]!.texts, expected, JSON.stringify(filter));
      });
    });

    test('options_update: wantedKinds turns sync events on for a live subscriber, and off again', async () => {
      const subscription = await Subscription.open(gateway.port, '');
      up.sync(ALICE);
      subscription.send(JSON.stringify({ type: 'options_update', payload: { wantedKinds: ['sync'], wantedDids: [BOB] } }));
      await subscription.roundTrip();
      const wanted = up.sync(BOB);
      up.sync(ALICE);
      up.create(BOB, POST);
      await up.settle();
      await settleSubscribers(gateway, [subscription]);
      subscription.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [BOB] } }));
      await subscription.roundTrip();
      up.sync(BOB);
      up.create(BOB, POST);
      await up.settle();
      await settleSubscribers(gateway, [subscription]);
      const events = subscription.events;
      assert.deepEqual(
        events.map((e) => `${e.kind}:${e.did}`),
        ['sync:' + BOB, 'commit:' + BOB],
        'the first #sync (options not yet updated) and alice’s are not sent; after the update back to v1’s kinds only the commit',
      );
      assert.equal(events[0]!.sync.seq, wanted);
    });

    test('v2: kinds=sync delivers #sync frames (the v1 event’s shape, with seq and RFC 3339 time); an unfiltered v2 stream has them too', async () => {
      const all = await readWholeStream(gateway.port, ALL_KINDS_QUERY);
      const onlySync = await Subscription.open(gateway.port, 'cursor=0&kinds=sync', { path: SUBSCRIBE_EVENTS });
      const unfiltered = await Subscription.open(gateway.port, 'cursor=0', { path: SUBSCRIBE_EVENTS });
      const live = up.sync(CAROL);
      await up.settle();
      const whole = await readWholeStream(gateway.port, ALL_KINDS_QUERY);
      assert.equal(whole.length, all.length + 1);
      await settleSubscribers(gateway, [onlySync, unfiltered]);
      assert.deepEqual(unfiltered.texts.map((frame) => v1FromV2(frame)), whole.map((e) => JSON.parse(e.raw)));
      assert.deepEqual(onlySync.texts.map((frame) => v1FromV2(frame)), syncs(whole).map((e) => JSON.parse(e.raw)));
      for (const [i, frame] of onlySync.texts.entries()) {
        assert.equal(frame, v2Expected(syncs(whole)[i]!.raw, JSON.parse(frame).payload.seq), 'byte for byte');
      }
      const last = JSON.parse(onlySync.texts.at(-1)!).payload;
      assert.equal(last.$type, 'network.bsky.jetstream.subscribeEvents#sync');
      assert.equal(last.sync.seq, live);
      // Resuming by seq at a #sync is inclusive, as for any event.
      const resumed = await Subscription.open(gateway.port, `cursor=${last.seq}&kinds=sync`, { path: SUBSCRIBE_EVENTS });
      await settleSubscribers(gateway, [resumed]);
      assert.deepEqual(resumed.texts, [onlySync.texts.at(-1)]);
    });

    test('bad wantedKinds: 400 with the reason before the upgrade and on the streams; close 1008 in options_update', async () => {
      const cases: Array<[query: string, reason: RegExp]> = [
        ['wantedKinds=syncs', /^wantedKinds: "syncs" is not one of commit, identity, account, sync/],
        ['wantedKinds=sync&wantedCollections=app.bsky.feed.post', /^wantedCollections constrains commit events only, and wantedKinds excludes commit/],
      ];
      for (const [query, reason] of cases) {
        const refused = await upgradeRequest(gateway.port, `/subscribe?${query}`);
        assert.equal(refused.status, 400, query);
        assert.match(refused.body.toString(), reason);
        for (const path of ['/stream', '/stream.ndjson'] as const) {
          const error = await HttpStream.open(gateway.port, path, query).then(
            () => assert.fail(`${path}?${query} was served`),
            (err: unknown) => err as StreamRefused,
          );
          assert.equal(error.status, 400);
          assert.match(error.body, reason);
        }
      }
      const subscription = await Subscription.open(gateway.port, '');
      subscription.send(JSON.stringify({ type: 'options_update', payload: { wantedKinds: 'sync' } }));
      assert.deepEqual(await subscription.waitClosed(), { code: 1008, reason: 'invalid options_update: wantedKinds must be an array' });
      const second = await Subscription.open(gateway.port, '');
      second.send(JSON.stringify({ type: 'options_update', payload: { wantedKinds: ['everything'] } }));
      const closed = await second.waitClosed();
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /wantedKinds: "everything" is not one of/);
    });
  });

  describe(`#sync at ingest over ${transport}`, { skip }, () => {
    test('a #sync whose CAR lacks its commit, or names another rev, is a counted drop; --ingest-collections keeps #sync', () =>
      withGateway({ transport, ingestCollections: [POST] }, {}, async ({ gateway, up }) => {
        const drops = async (reason: string) => {
          const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
          return Number(new RegExp(`^contrail_ingest_drops_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
        };
        const commitOf = (did: string, rev: string) => cborBlock({ did, version: 3, data: cborBlock({ e: [], l: null }).cid, rev, prev: null, sig: new Uint8Array(64) });
        up.frame((seq) => {
          const commit = commitOf(ALICE, tidFor(seq));
          return encodeFrame({ op: 1, t: '#sync' }, { seq, did: ALICE, rev: tidFor(seq), blocks: carOf([commit.cid], []), time: new Date().toISOString() });
        });
        up.frame((seq) => {
          const commit = commitOf(ALICE, tidFor(seq - 1));
          return encodeFrame({ op: 1, t: '#sync' }, { seq, did: ALICE, rev: tidFor(seq), blocks: carOf([commit.cid], [commit]), time: new Date().toISOString() });
        });
        up.create(ALICE, LIKE); // filtered out at ingest
        const kept = up.sync(ALICE);
        await up.settle();
        assert.equal(await drops('record_missing'), 1);
        assert.equal(await drops('bad_field'), 1);
        const stored = await readWholeStream(gateway.port, ALL_KINDS_QUERY);
        assert.deepEqual(
          stored.map((e) => `${e.kind}:${JSON.parse(e.raw).sync?.seq}`),
          [`sync:${kept}`],
        );
      }));
  });
}

describe('#sync under --verify full', () => {
  test('only a #sync that verifies becomes an event; a forged one is withheld', async (t) => {
    const alice = await SignedRepo.create('did:plc:alicesyncevent00000000000');
    const directory = createServer((req, res) => {
      if (decodeURIComponent(req.url!.slice(1)) !== alice.did) return res.writeHead(404).end();
      res.end(JSON.stringify({ id: alice.did, verificationMethod: [{ id: '#atproto', type: 'Multikey', controller: alice.did, publicKeyMultibase: alice.signingKey.slice('did:key:'.length) }] }));
    });
    directory.listen(0, '127.0.0.1');
    await once(directory, 'listening');
    const h = await startRelayGateway({ verify: 'full', plcUrl: `http://127.0.0.1:${(directory.address() as AddressInfo).port}` });
    t.after(async () => {
      await stopRelayGateway(h);
      directory.close();
    });
    const { relay, gateway } = h;
    const post = (text: string, n: number) => ({ action: 'create' as const, collection: POST, rkey: tidFor(n), record: { $type: POST, text, createdAt: '2026-12-01T00:00:00.000Z' } });
    relay.push({ seq: 1, bytes: commitFrameOf(await alice.commit(1, [post('first', 1)])) });
    await alice.commit(2, [post('not sent: the #sync below stands for it', 2)]);
    const sync = await alice.sync(3);
    const [root] = CarBufferReader.fromBytes(sync.blocks).getRoots();
    const { blocks: forgedBlocks } = await withBadSignature({ ...sync, commit: root } as unknown as CommitBody);
    relay.push({ seq: 3, bytes: syncFrameOf({ ...sync, blocks: forgedBlocks }) });
    relay.push({ seq: 4, bytes: syncFrameOf({ ...sync, seq: 4 }) });
    relay.push({ seq: 5, bytes: commitFrameOf(await alice.commit(5, [post('after the resync', 5)])) });
    const subscription = await Subscription.open(gateway.port, `cursor=0&${ALL_KINDS_QUERY}`);
    await subscription.waitForCount(3);
    await waitUntil(async () => /contrail_verify_failures_total\{reason="bad_signature"\} 1/.test((await httpGet(gateway.metricsPort, '/metrics')).body.toString()), 'the forged #sync to be counted');
    await subscription.roundTrip();
    assert.deepEqual(
      subscription.events.map((e) => (e.kind === 'sync' ? `sync:${e.sync.seq}` : `commit:${e.commit.record.text}`)),
      ['commit:first', 'sync:4', 'commit:after the resync'],
    );
  });
});
