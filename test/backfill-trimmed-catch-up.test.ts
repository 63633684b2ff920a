/**
 * A repo backfill's catch-up starts where the snapshot began or where the subscriber asked,
 * whichever is earlier (subscriber-backfill.ts #catchUp): the repo's events withheld since the
 * request are owed from the buffer. A subscriber replaying from the past asks at a position far
 * older than the fetch's start (the tip), and retention may trim past that position while the
 * repo is fetched — the subscriber itself is ahead of the trim, so it is not dropped. Its owed
 * events are then gone, and it must be told so (the `buffer_trimmed` reason, as for a snapshot
 * older than the buffer) rather than be sent a catch-up silently missing them: #arrived checks
 * the snapshot's start only, and #failed nothing at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { BackfillFailure, createBackfillMetrics, SubscriberBackfill, type BackfillContext } from '../src/backfill/index.ts';
import type { Entry, EventKind } from '../src/events/index.ts';
import { EventStore } from '../src/store/index.ts';
import { tempDir } from './support/gateway.ts';

const REPO = 'did:plc:repo0000000000000000000a';
const OTHER = 'did:plc:other000000000000000000';
const rev = (n: number) => `3l${n.toString().padStart(10, '0')}`;

function eventAt(timeUs: number, did: string, kind: EventKind, n: number): Entry {
  const json =
    kind === 'commit'
      ? `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"${rev(n)}","operation":"create","collection":"app.bsky.feed.like","rkey":"r${n}","record":{},"cid":"bafy${n}"}}`
      : `{"did":"${did}","time_us":${timeUs},"kind":"identity","identity":{"did":"${did}","handle":"h${n}.test","seq":${n}}}`;
  return { timeUs, did, kind, collection: kind === 'commit' ? 'app.bsky.feed.like' : null, json: Buffer.from(json) };
}

/**
 * A buffer where the repo has an identity event and a commit after `requestedAt`, then other
 * events; retention then trims through the repo's events while its snapshot is fetched. Returns
 * what the backfill sends once `settle` resolves or rejects the fetch.
 */
async function backfillAcrossATrim(t: test.TestContext, settle: 'snapshot' | 'failure'): Promise<{ messages: string[]; owed: Entry[] }> {
  const dir = tempDir('contrail-backfill-trim-');
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20, fsync: false });
  t.after(async () => {
    await store.close();
    dir.remove();
  });
  const base = 1_700_000_000_000_000;
  await store.commit({ entries: [eventAt(base + 1, OTHER, 'identity', 1)], revs: new Map() });
  const requestedAt = store.hotLog.newest; // a replaying subscriber asks here
  const owed = [eventAt(base + 2, REPO, 'identity', 2), eventAt(base + 3, REPO, 'commit', 3)];
  await store.commit({ entries: owed, revs: new Map() });
  await store.commit({ entries: Array.from({ length: 20 }, (_, i) => eventAt(base + 10 + i, OTHER, 'identity', 10 + i)), revs: new Map() });

  let settleFetch!: { resolve: (value: unknown) => void; reject: (err: Error) => void };
  let output!: () => void;
  const ready = new Promise<void>((resolve) => (output = resolve));
  const context = {
    snapshots: { get: () => new Promise((resolve, reject) => (settleFetch = { resolve, reject })) },
    store,
    metrics: createBackfillMetrics(new Registry()),
    logger: pino({ level: 'silent' }),
  } as unknown as BackfillContext;
  // The subscriber replays on meanwhile, past the repo's events (withheld, as the hub asks for each
  // event it would send): it is at the tip.
  const backfill = new SubscriberBackfill(context, () => true, () => output(), () => store.hotLog.newest, 1);
  backfill.request([REPO], requestedAt);
  const passed = store.readAfter(requestedAt, { maxEntries: 1_000 });
  assert.deepEqual(passed.entries.filter((entry) => backfill.withholds(entry)), owed, "the repo's events are withheld");
  // The fetch started at the tip (SnapshotSource.#fetch: since = tip()), far ahead of requestedAt.
  const since = store.hotLog.newest;

  // Retention trims through the repo's withheld events; the subscriber, at the tip, is ahead of it.
  await store.trimBefore(base + 5, 1_000);
  assert.equal(store.trimmedUpTo, base + 3, 'the repo\'s withheld events were trimmed');
  assert.ok(store.hotLog.newest > store.trimmedUpTo);

  // The snapshot, fetched after the repo's commit, reflects it: only the identity event is owed then.
  if (settle === 'snapshot') settleFetch.resolve({ did: REPO, rev: rev(3), commitCid: 'bafysnapshot', records: [], skipped: 0, bytes: 0, since });
  else settleFetch.reject(new BackfillFailure('timeout', 'the PDS did not answer in time'));
  await ready;
  const items = backfill.peek(store.hotLog.newest, 1_000);
  return { messages: items.map((item) => (Buffer.isBuffer(item) ? item : item.json).toString()), owed: settle === 'snapshot' ? owed.slice(0, 1) : owed };
}

test('a backfill whose owed events retention trimmed during the fetch says buffer_trimmed instead of completing without them', async (t) => {
  const { messages, owed } = await backfillAcrossATrim(t, 'snapshot');
  const sentOwed = owed.filter((entry) => messages.includes(entry.json.toString()));
  const status = messages.map((m) => JSON.parse(m) as { kind: string; backfill?: { status: string; reason?: string } }).find((m) => m.kind === 'backfill');
  assert.ok(
    sentOwed.length === owed.length || status?.backfill?.reason === 'buffer_trimmed',
    `the catch-up has ${sentOwed.length} of the ${owed.length} withheld events, and the repo's status is ${JSON.stringify(status?.backfill)}`,
  );
});

test('a failed backfill whose withheld events retention trimmed during the fetch says so instead of sending the rest as if whole', async (t) => {
  const { messages, owed } = await backfillAcrossATrim(t, 'failure');
  const sentOwed = owed.filter((entry) => messages.includes(entry.json.toString()));
  const status = messages.map((m) => JSON.parse(m) as { kind: string; backfill?: { status: string; reason?: string } }).find((m) => m.kind === 'backfill');
  assert.ok(
    sentOwed.length === owed.length || status?.backfill?.reason === 'buffer_trimmed',
    `the withheld events that follow the failure are ${sentOwed.length} of ${owed.length}, and the repo's status is ${JSON.stringify(status?.backfill)}`,
  );
});
