/**
 * The Ingester keeps each repo's newest rev and skips commits whose rev is not newer (a relay's
 * replay after a restart or a switch of relay). A rev is a TID, a timestamp: one far in the future
 * (a PDS whose clock ran ahead, read directly; a relay's forgery) sorted above every rev the repo
 * would write until that time came, so without --verify one such commit made every later commit
 * of the repo a `stale_rev` skip for as long as that clock had been ahead — a year ahead, a year.
 * A kept rev that far ahead of ours is no rev the repo can have written yet, and skips nothing:
 * the commit is stored as the relay sent it (nothing is lost, whatever our own clock says), and
 * so are the repo's next ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventStore } from '../src/store/event-store.ts';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { commitFrame, tidFor } from './support/frames.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { ALICE, BOB, POST, Upstream, httpGet, readWholeStream, recordFor, withGateway } from './support/subscribe-client.ts';

/** A TID for `ms` (tidFor counts microseconds from 1,700,000,000 s). */
const tidAt = (ms: number) => tidFor(ms * 1000 - 1_700_000_000_000_000);

test("a commit whose rev is far in the future does not silence the repo's later commits", () =>
  withGateway({}, {}, async ({ gateway, up }) => {
    const first = up.create(ALICE, POST);
    const yearAhead = tidAt(Date.now() + 365 * 86_400_000);
    up.frame((seq) => commitFrame({ seq, repo: ALICE, rev: yearAhead, ops: [{ action: 'create', path: `${POST}/${tidFor(900)}`, record: recordFor(POST, 900, ALICE) }] }));
    const later = [up.create(ALICE, POST), up.create(ALICE, POST)];
    await up.settle();

    const revs = (await readWholeStream(gateway.port)).map((event) => (JSON.parse(event.raw) as { commit: { rev: string } }).commit.rev);
    assert.deepEqual(revs, [tidFor(first * 10), yearAhead, ...later.map((seq) => tidFor(seq * 10))], `the commits after the one at rev ${yearAhead}, a year ahead, are stored, and so is it`);
    const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
    assert.doesNotMatch(metrics, /^contrail_ingest_skipped_total\{reason="stale_rev"\} [1-9]/m, 'no commit was skipped as not newer');
  }));

// A buffer kept by an earlier contrail may hold such a rev, or one that is no TID at all (a frame
// whose rev was none was stored until such frames were dropped as malformed): it skips nothing either.
test('a rev kept in the buffer that is no TID, or far in the future, skips nothing', async (t) => {
  const defer = cleanup(t);
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const dir = tempDir();
  defer(() => dir.remove());
  const seeded = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20 });
  await seeded.commit({ entries: [], revs: new Map([[ALICE, 'zzzzzzzzzzzzzzzzzzzz'], [BOB, tidAt(Date.now() + 365 * 86_400_000)]]), cursor: { url: relay.url, seq: 0 } });
  await seeded.close();
  const gateway = await startTestGateway(relay.url, dir.path);
  defer(() => gateway.stop());
  const up = new Upstream(relay, () => gateway.port);
  const commits = [up.create(ALICE, POST), up.create(BOB, POST)];
  await up.settle();
  const stored = (await readWholeStream(gateway.port)).map((event) => `${event.did} ${(JSON.parse(event.raw) as { commit: { rev: string } }).commit.rev}`);
  assert.deepEqual(stored, [`${ALICE} ${tidFor(commits[0]! * 10)}`, `${BOB} ${tidFor(commits[1]! * 10)}`]);
});
