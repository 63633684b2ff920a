/**
 * backfill=true through a real gateway on 127.0.0.1, once per transport: FakeRelay → ingest →
 * LMDB → server, with a PLC directory and a PDS as real HTTP servers (the PDS serves real repo
 * exports from test/fixtures/cars, and can hold its answers back so live events arrive during
 * the backfill, cut a CAR short, or never answer; and a big repo written and signed by
 * @atproto/repo). Checks the messages and their order, the withholding of live events and the
 * catch-up, backfill output held at a client's high-water mark, shared fetches, failures with
 * their reasons, the operator's switches, and the option's bad values on every route.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buffer } from 'node:stream/consumers';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { commitFrame, identityFrame, tidFor } from './support/frames.ts';
import type { tempDir } from './support/gateway.ts';
import { startPdsAndPlc } from './support/pds-and-plc.ts';
import { SignedRepo } from './support/signed-repo.ts';
import { LIKE, POST, SUBSCRIBE_EVENTS, Subscription, Upstream, httpGet, recordFor, startRelayGateway, stopRelayGateway, tcpSocket, upgradeRequest, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/cars/${name}`, import.meta.url));
/** Two real repos, their DIDs, the revs of their commits and their listings (`collection/rkey<TAB>cid`). */
const REPO = 'did:plc:53iucmf5ldftgqyf2ac7hmhd';
const SNAPSHOT_REV = '3migo7fijwi2k';
const LISTING = fixture('repo-jetstream.expected-records.tsv').toString().trim().split('\n');
const TINY = 'did:plc:7hptvnhdyeu53xp6rz7e42iy';
const TINY_REV = '3lscuqc52or2x';
const TINY_LISTING = fixture('repo-tiny.expected-records.tsv').toString().trim().split('\n');
const CARS = new Map([
  [REPO, fixture('repo-jetstream.car')],
  [TINY, fixture('repo-tiny.car')],
]);
/** Revs just below and above REPO's snapshot. */
const OLDER_REV = '3migo7fijwi2j';
const NEWER_REV = '3migo7fijwi2l';
/** Revs newer than both snapshots, each newer than the last (ingest drops a rev not newer than the repo's last). */
let laterRevs = 0;
const laterRev = () => tidFor(200_000_000_000_000 + ++laterRevs);
/**
 * A repo far bigger than a paused client's socket buffers and the gateway's high-water mark:
 * 2,000 records of ~4 KB (about 8 MB of events), written and signed by @atproto/repo.
 */
const BIG = 'did:plc:bigbigbigbigbigbigbigbigbi';
const big = await SignedRepo.create(
  BIG,
  undefined,
  Array.from({ length: 2000 }, (_, i) => ({
    action: 'create' as const,
    collection: i % 4 ? POST : LIKE,
    rkey: `3lbig${String(i).padStart(8, '0')}`,
    record: { $type: i % 4 ? POST : LIKE, text: `${i} ${'b'.repeat(4000)}`, createdAt: '2026-12-01T00:00:00.000Z' },
  })),
);
const BIG_LISTING = await big.listing();
CARS.set(BIG, await buffer(big.car()));
/** Revs newer than BIG's snapshot (its rev is a TID of when it was built), each newer than the last. */
let bigRevs = 0;
const bigLaterRev = () => tidFor(Date.now() * 1000 - 1_700_000_000_000_000 + ++bigRevs);
const TAKENDOWN = 'did:plc:takendowntakendowntakend';
const OTHER = 'did:plc:otherotherotherotherothe';

/** How the PDS answers getRepo for a DID: the CAR, the CAR cut in half, or never. */
type Behaviour = 'serve' | 'truncate' | 'stall';

/** A PLC directory and a PDS (REPO, TINY, TAKENDOWN; others not found) as HTTP servers; the PDS can be held. */
class Network {
  pdsRequests: string[] = [];
  readonly behaviour = new Map<string, Behaviour>();
  #held: Array<() => void> | undefined;
  plcUrl = '';
  pdsUrl = '';
  #stopServers = () => {};

  async start(): Promise<void> {
    ({ pdsUrl: this.pdsUrl, plcUrl: this.plcUrl, stop: this.#stopServers } = await startPdsAndPlc((req, res) => {
      this.pdsRequests.push(req.url ?? '');
      const did = new URL(req.url ?? '/', 'http://pds').searchParams.get('did') ?? '';
      const behaviour = this.behaviour.get(did) ?? 'serve';
      if (behaviour === 'stall') return;
      const answer = () => {
        const car = CARS.get(did);
        if (car) {
          res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
          res.end(behaviour === 'truncate' ? car.subarray(0, car.length >> 1) : car);
          return;
        }
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify(did === TAKENDOWN ? { error: 'RepoTakendown', message: 'Repo has been takendown' } : { error: 'RepoNotFound', message: `Could not find repo for DID: ${did}` }));
      };
      if (this.#held) this.#held.push(answer);
      else answer();
    }));
  }

  hold(): void {
    this.#held = [];
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const answer of held) answer();
  }

  stop(): void {
    this.release();
    this.#stopServers();
  }
}

const backfillQuery = (dids: string[], extra = '') => `${dids.map((d) => `wantedDids=${d}`).join('&')}&backfill=true${extra}`;

function listingOf(events: Array<Record<string, any>>): string[] {
  return events.map((e) => `${e.commit.collection}/${e.commit.rkey}\t${e.commit.cid}`);
}

const isBackfillEnd = (did: string) => (e: Record<string, any>) => e.kind === 'backfill' && e.did === did;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`backfill over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    const network = new Network();

    before(async () => {
      await network.start();
      // Snapshots are not reused between tests (each test counts its own fetches).
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport, plcUrl: network.plcUrl, backfillCacheTtlMs: 1 }));
    });

    afterEach(async () => {
      network.release();
      network.behaviour.clear();
      await Subscription.closeAll();
    });

    after(async () => {
      await stopRelayGateway({ relay, dir, gateway });
      network.stop();
    });

    /** Pushes a commit with a chosen rev (creating one like) and waits until it is stored. */
    async function liveCommit(rev: string, repo = REPO): Promise<void> {
      const seq = ++up.seq;
      const path = `${LIKE}/${rev}`;
      relay.push({ seq, bytes: commitFrame({ seq, repo, rev, ops: [{ action: 'create', path, record: recordFor(LIKE, seq, repo) }] }) });
      await up.settle();
    }

    test('records of the wanted collections as backfilled creates, then the complete message, then live events', async () => {
      const sub = await Subscription.open(gateway.port, backfillQuery([TINY], `&wantedCollections=${LIKE}`));
      await waitUntil(() => sub.events.some(isBackfillEnd(TINY)), 'the backfill to complete');
      const events = sub.events;
      const complete = events.at(-1)!;
      const records = events.slice(0, -1);
      assert.deepEqual(listingOf(records), TINY_LISTING.filter((line) => line.startsWith(`${LIKE}/`)));
      for (const event of records) {
        assert.equal(event.backfilled, true);
        assert.equal(event.did, TINY);
        assert.equal(event.kind, 'commit');
        assert.equal(event.commit.operation, 'create');
        assert.equal(event.commit.rev, TINY_REV);
        assert.equal(event.commit.record.$type, LIKE);
        assert.equal(typeof event.time_us, 'number');
      }
      assert.deepEqual(complete.backfill, { status: 'complete', rev: TINY_REV, records: 2 });
      assert.equal(complete.did, TINY);
      const rev = laterRev();
      await liveCommit(rev, TINY);
      await waitUntil(() => sub.events.length === events.length + 1, 'the live event');
      const live = sub.events.at(-1)!;
      assert.equal(live.commit.rev, rev);
      assert.equal(live.backfilled, undefined);
    });

    test('live events during the backfill are withheld, then those newer than the snapshot come once, in order, after it', async () => {
      network.hold();
      const requestsBefore = network.pdsRequests.length;
      const sub = await Subscription.open(gateway.port, backfillQuery([REPO]));
      const second = await Subscription.open(gateway.port, backfillQuery([REPO], `&wantedCollections=${POST}`));
      await waitUntil(() => network.pdsRequests.length > requestsBefore, 'the PDS to be asked');
      // While the PDS holds the repo back: a commit the snapshot already has, a newer one, and
      // an identity change.
      await liveCommit(OLDER_REV);
      await liveCommit(NEWER_REV);
      const seq = ++up.seq;
      relay.push({ seq, bytes: identityFrame({ seq, did: REPO, handle: 'renamed.example.com' }) });
      await up.settle();
      await sub.roundTrip();
      assert.equal(sub.messages.length, 0, 'nothing of the repo flows while it is backfilled');
      network.release();
      await waitUntil(() => sub.events.length >= 23 + 1 + 2, 'the backfill and the catch-up');
      await sub.roundTrip();
      const ofRepo = sub.events.filter((e) => e.did === REPO);
      assert.deepEqual(listingOf(ofRepo.slice(0, 23)), LISTING);
      assert.equal(ofRepo[23]!.kind, 'backfill');
      assert.deepEqual(
        ofRepo.slice(24).map((e) => (e.kind === 'commit' ? e.commit.rev : e.kind)),
        [NEWER_REV, 'identity'],
      );
      assert.equal(ofRepo.length, 26, 'nothing repeated');
      // A subscriber that asked for the same repo meanwhile shared the fetch, with its own filter.
      assert.equal(network.pdsRequests.length, requestsBefore + 1);
      await waitUntil(() => second.events.some(isBackfillEnd(REPO)), 'the second backfill');
      assert.deepEqual(
        listingOf(second.events.filter((e) => e.kind === 'commit')),
        LISTING.filter((line) => line.startsWith(`${POST}/`)),
      );
      // Later changes arrive once each.
      const rev = laterRev();
      await liveCommit(rev);
      await waitUntil(() => sub.events.filter((e) => e.did === REPO).length === 27, 'the next live event');
      await sub.roundTrip();
      assert.equal(sub.events.filter((e) => e.did === REPO).length, 27);
      assert.equal(sub.events.at(-1)!.commit.rev, rev);
    });

    test('backfill output stops at a client\'s high-water mark and resumes when it reads: every record once, the complete message, then the live events', async () => {
      await withGateway({ transport, plcUrl: network.plcUrl }, { hub: { highWaterBytes: 64 * 1024 } }, async ({ gateway: held, relay: heldRelay, up: heldUp }) => {
        const commit = async (rev: string) => {
          const seq = ++heldUp.seq;
          heldRelay.push({ seq, bytes: commitFrame({ seq, repo: BIG, rev, ops: [{ action: 'create', path: `${LIKE}/${rev}`, record: recordFor(LIKE, seq, BIG) }] }) });
          await heldUp.settle();
        };
        network.hold();
        const requestsBefore = network.pdsRequests.length;
        const sub = await Subscription.open(held.port, backfillQuery([BIG]));
        tcpSocket(sub).pause();
        await waitUntil(() => network.pdsRequests.length > requestsBefore, 'the PDS to be asked');
        const liveRevs = [bigLaterRev()];
        await commit(liveRevs[0]!); // during the fetch: withheld, then caught up
        network.release();
        await waitUntil(() => held.server.hub.counts().some((c) => c.mode === 'blocked'), 'the backfill output to pass the high-water mark', 60_000);
        for (let i = 0; i < 3; i++) {
          liveRevs.push(bigLaterRev());
          await commit(liveRevs.at(-1)!); // while the client does not read
        }
        tcpSocket(sub).resume();
        const expected = BIG_LISTING.length + 1 + liveRevs.length;
        await waitUntil(() => sub.messages.length >= expected, `${expected} messages (have ${sub.messages.length})`, 60_000);
        liveRevs.push(bigLaterRev());
        await commit(liveRevs.at(-1)!); // after the backfill
        await waitUntil(() => sub.messages.length >= expected + 1, 'the last live event');
        await sub.roundTrip();
        const events = sub.events;
        assert.equal(events.length, expected + 1, 'nothing repeated, nothing else');
        assert.deepEqual(listingOf(events.slice(0, BIG_LISTING.length)), BIG_LISTING, 'every record once, in the MST\'s order');
        assert.ok(events.slice(0, BIG_LISTING.length).every((e) => e.backfilled === true && e.commit.rev === big.rev));
        assert.deepEqual(events[BIG_LISTING.length]!.backfill, { status: 'complete', rev: big.rev, records: BIG_LISTING.length });
        assert.deepEqual(
          events.slice(BIG_LISTING.length + 1).map((e) => [e.commit.rev, e.backfilled]),
          liveRevs.map((rev) => [rev, undefined]),
          'then the live events, in order',
        );
        assert.equal(sub.closeInfo, undefined, 'the client was not dropped');
      });
    });

    test('a repo the PDS reports taken down: a failed message with the reason, and its live events flow', async () => {
      const sub = await Subscription.open(gateway.port, backfillQuery([TAKENDOWN]));
      await waitUntil(() => sub.events.length > 0, 'the failure');
      assert.deepEqual(sub.events[0], {
        did: TAKENDOWN,
        time_us: sub.events[0]!.time_us,
        kind: 'backfill',
        backfill: { status: 'failed', reason: 'repo_takendown', message: `${new URL(network.pdsUrl).host} answered 400 RepoTakendown: Repo has been takendown` },
      });
      up.create(TAKENDOWN, POST);
      await up.settle();
      await waitUntil(() => sub.events.length === 2, 'the live event');
      assert.equal(sub.events[1]!.kind, 'commit');
    });

    test('a truncated CAR: failed with bad_car, nothing of it sent, and the live events withheld meanwhile follow', async () => {
      network.behaviour.set(TINY, 'truncate');
      network.hold();
      const requestsBefore = network.pdsRequests.length;
      const sub = await Subscription.open(gateway.port, backfillQuery([TINY]));
      await waitUntil(() => network.pdsRequests.length > requestsBefore, 'the PDS to be asked');
      const rev = laterRev();
      await liveCommit(rev, TINY);
      network.release();
      await waitUntil(() => sub.events.length === 2, 'the failure and the withheld event');
      const [failed, live] = sub.events;
      assert.ok(failed && live);
      assert.equal(failed.kind, 'backfill');
      assert.equal(failed.backfill.status, 'failed');
      assert.ok(['bad_car', 'missing_block'].includes(failed.backfill.reason), failed.backfill.reason);
      assert.equal(live.commit.rev, rev);
      assert.equal(live.backfilled, undefined);
    });

    test('options_update with "backfill": true starts a backfill of the new wanted repos; one not on the PDS fails with repo_not_found', async () => {
      const sub = await Subscription.open(gateway.port, `wantedDids=${OTHER}`);
      sub.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [OTHER, REPO], wantedCollections: [POST], backfill: true } }));
      await waitUntil(() => sub.events.filter((e) => e.kind === 'backfill').length === 2, 'both backfills to end');
      const ends = Object.fromEntries(sub.events.filter((e) => e.kind === 'backfill').map((e) => [e.did, e.backfill]));
      assert.deepEqual(ends[REPO], { status: 'complete', rev: SNAPSHOT_REV, records: 6 });
      assert.equal(ends[OTHER].reason, 'repo_not_found');
      // Asking again fetches only the repo whose backfill failed: REPO was backfilled on this connection.
      const requests = network.pdsRequests.length;
      sub.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [OTHER, REPO], wantedCollections: [POST], backfill: true } }));
      await waitUntil(() => sub.events.filter((e) => e.kind === 'backfill').length === 3, 'the failed one to be tried again');
      const again = sub.events.filter((e) => e.kind === 'backfill').at(-1)!;
      assert.equal(again.did, OTHER);
      assert.equal(again.backfill.reason, 'repo_not_found');
      assert.deepEqual(network.pdsRequests.slice(requests).map((url) => new URL(url, 'http://pds').searchParams.get('did')), [OTHER]);
    });

    test('requireHello: the backfill waits for the hello, whose filter it follows', async () => {
      const requests = network.pdsRequests.length;
      const sub = await Subscription.open(gateway.port, backfillQuery([REPO, TINY], '&requireHello=true'));
      await waitUntil(() => network.pdsRequests.length === requests + 2, 'the fetches');
      await sub.roundTrip();
      assert.equal(sub.messages.length, 0);
      sub.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [TINY], wantedCollections: [LIKE] } }));
      await waitUntil(() => sub.events.some(isBackfillEnd(TINY)), 'the backfill');
      await sub.roundTrip();
      assert.deepEqual(listingOf(sub.events.slice(0, -1)), TINY_LISTING.filter((line) => line.startsWith(`${LIKE}/`)));
      assert.ok(sub.events.every((e) => e.did === TINY), 'the repo dropped from wantedDids is not sent');
    });

    test('a PDS that never answers: failed with timeout after the attempts, and its live events follow', async () => {
      await withGateway({ transport, plcUrl: network.plcUrl, backfillTimeoutMs: 200 }, {}, async ({ gateway: quick, up: quickUp }) => {
        network.behaviour.set(REPO, 'stall');
        const sub = await Subscription.open(quick.port, backfillQuery([REPO]));
        quickUp.create(REPO, POST);
        await quickUp.settle();
        await waitUntil(() => sub.events.length === 2, 'the failure and the withheld event', 30_000);
        assert.equal(sub.events[0]!.backfill.reason, 'timeout');
        assert.equal(sub.events[1]!.kind, 'commit');
      });
    });

    test('no heartbeat resumes past an event withheld while its repo is fetched', async () => {
      await withGateway({ transport, plcUrl: network.plcUrl, backfillTimeoutMs: 1_000 }, {}, async ({ gateway: slow, up: slowUp }) => {
        network.behaviour.set(REPO, 'stall');
        const sub = await Subscription.open(slow.port, `${backfillQuery([REPO])}&heartbeat=1s`);
        slowUp.create(REPO, POST);
        const { newestTimeUs } = await slowUp.settle();
        await waitUntil(() => sub.events.some((event) => event.kind === 'commit'), 'the withheld event, after the failure', 30_000);
        const heartbeats = sub.events.filter((event) => event.type === 'heartbeat');
        const passing = heartbeats.filter((heartbeat, i) => i < sub.events.findIndex((event) => event.kind === 'commit') && heartbeat.time_us > newestTimeUs!);
        assert.deepEqual(passing, [], 'a heartbeat sent while the repo was fetched would resume after its withheld event');
        await waitUntil(() => sub.events.at(-1)?.type === 'heartbeat', 'heartbeats again once nothing is owed', 10_000);
        assert.equal(sub.events.at(-1)!.time_us, newestTimeUs! + 1);
      });
    });

    test('the operator decides: PDS endpoints on private addresses are refused without --allow-private-endpoints; --no-backfill refuses the option', async () => {
      await withGateway({ transport, plcUrl: network.plcUrl, allowPrivateEndpoints: false }, {}, async ({ gateway: guarded }) => {
        const requests = network.pdsRequests.length;
        const sub = await Subscription.open(guarded.port, backfillQuery([REPO]));
        await waitUntil(() => sub.events.length === 1, 'the failure');
        assert.equal(sub.events[0]!.backfill.reason, 'private_endpoint');
        assert.match(sub.events[0]!.backfill.message, /127\.0\.0\.1/);
        assert.equal(network.pdsRequests.length, requests, 'the PDS was not asked');
        // A did:web's own host is guarded the same way, and refused with the same reason.
        const webs = ['did:web:127.0.0.1', 'did:web:169.254.169.254'];
        const webSub = await Subscription.open(guarded.port, backfillQuery(webs));
        await waitUntil(() => webSub.events.length === 2, 'both failures');
        for (const did of webs) {
          const { backfill } = webSub.events.find((e) => e.did === did)!;
          assert.equal(backfill.reason, 'private_endpoint', backfill.message);
          assert.match(backfill.message, /non-public address/);
        }
      });
      await withGateway({ transport, plcUrl: network.plcUrl, backfill: false }, {}, async ({ gateway: plain }) => {
        const refused = await upgradeRequest(plain.port, `/subscribe?${backfillQuery([REPO])}`);
        assert.equal(refused.status, 400);
        assert.match(refused.body.toString(), /backfill: this server does not backfill/);
      });
    });

    test('bad values: HTTP 400 before the upgrade, close 1008 after it; the HTTP streams and v2 refuse backfill', async () => {
      const cases: Array<[string, RegExp]> = [
        ['/subscribe?backfill=true', /backfill: needs wantedDids/],
        ['/subscribe?backfill=yes&wantedDids=did:plc:x', /backfill: "yes" must be true or false/],
        [`/subscribe?backfill=true&${Array.from({ length: 101 }, (_, i) => `wantedDids=did:plc:many${i}`).join('&')}`, /at most 100 wantedDids/],
        [`${SUBSCRIBE_EVENTS}?dids=${REPO}&backfill=true`, /backfill is a \/subscribe \(v1\) parameter/],
      ];
      for (const [path, reason] of cases) {
        const result = await upgradeRequest(gateway.port, path);
        assert.equal(result.status, 400, path);
        assert.match(result.body.toString(), reason);
      }
      for (const path of ['/stream', '/stream.ndjson']) {
        const result = await httpGet(gateway.port, `${path}?${backfillQuery([REPO])}`);
        assert.equal(result.status, 400, path);
        assert.match(result.body.toString(), /backfill=true: backfill needs a WebSocket/);
      }
      const sub = await Subscription.open(gateway.port, '');
      sub.send(JSON.stringify({ type: 'options_update', payload: { backfill: true } }));
      const closed = await sub.waitClosed();
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /invalid options_update: backfill: needs wantedDids/);
    });
  });
}
