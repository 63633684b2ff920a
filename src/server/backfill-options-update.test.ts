/**
 * An options_update applies to everything sent after it (options-update.ts): a repo backfill's
 * output, too. The snapshot's records are checked against the subscriber's filter as they are
 * sent (SubscriberBackfill.peek), but the catch-up — the repo's stored events newer than the
 * snapshot — is filtered once, when the snapshot arrives, and then sent as it is, even if an
 * options_update came in between and no longer wants some of those events.
 */
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { tempDir } from '../../test/support/gateway.ts';
import { waitUntil } from '../../test/support/poll.ts';
import { createBackfillMetrics, type BackfillContext, type SnapshotSource } from '../backfill/index.ts';
import type { Entry } from '../events/index.ts';
import { EventStore } from '../store/index.ts';
import { EventCompressor } from './compression.ts';
import { parseFilter } from './filter.ts';
import { ServerMetrics } from './metrics.ts';
import { SubscriberHub } from './subscribers.ts';
import type { SubscriberSink } from './transport.ts';
import { v1Wire } from './wire.ts';

const DID = 'did:plc:alice000000000000000000a';
const LIKE = 'app.bsky.feed.like';
const POST = 'app.bsky.feed.post';

function commitAt(timeUs: number, collection: string, rev: string): Entry {
  const json = Buffer.from(
    `{"did":"${DID}","time_us":${timeUs},"kind":"commit","commit":{"rev":"${rev}","operation":"create","collection":"${collection}","rkey":"r${timeUs}","record":{},"cid":"bafy${timeUs}"}}`,
  );
  return { timeUs, did: DID, kind: 'commit', collection, json };
}

class Sink implements SubscriberSink {
  readonly sent: string[] = [];
  send(data: Uint8Array): void {
    this.sent.push(Buffer.from(data).toString());
  }
  bufferedAmount(): number {
    return 0;
  }
  cork(fn: () => void): void {
    fn();
  }
  close(): void {}
  terminate(): void {}
}

test('after an options_update that drops a collection, a backfill\'s catch-up sends none of that collection\'s events', async (t) => {
  const dir = tempDir('contrail-backfill-update-');
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20, fsync: false });
  t.after(async () => {
    await store.close();
    dir.remove();
  });
  await store.commit({ entries: [commitAt(1_000_000, LIKE, '3l0000000001')], revs: new Map() });

  let deliver!: (snapshot: Awaited<ReturnType<SnapshotSource['get']>>) => void;
  const snapshots = { get: () => new Promise((resolve) => (deliver = resolve)) } as unknown as SnapshotSource;
  const context = {
    snapshots,
    store,
    metrics: createBackfillMetrics(new Registry()),
    logger: pino({ level: 'silent' }),
  } as unknown as BackfillContext;
  const hub = new SubscriberHub({ store, logger: pino({ level: 'silent' }), metrics: new ServerMetrics(new Registry(), () => []), backfill: context });
  t.after(() => hub.stop());
  const compressor = new EventCompressor(readFileSync(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname));
  const sink = new Sink();
  const subscriber = hub.open(
    {
      filter: parseFilter({ wantedDids: [DID], wantedCollections: [LIKE, POST] }),
      wire: v1Wire(compressor, false),
      deflate: false,
      position: store.hotLog.newest,
      requireHello: false,
      remoteAddress: '127.0.0.1',
      backfill: true,
    },
    sink,
  );
  const mode = () => subscriber.mode;
  await waitUntil(() => mode() === 'live', 'the subscriber at the tip');
  const requestedAt = store.hotLog.newest;

  // While the repo is fetched, a like and a post of it are stored (and withheld).
  await store.commit({ entries: [commitAt(2_000_000, LIKE, '3l0000000002'), commitAt(2_000_001, POST, '3l0000000003')], revs: new Map() });
  assert.deepEqual(sink.sent, [], 'withheld while the repo is fetched');

  // The snapshot (as of the first like) arrives: its catch-up is the like and the post.
  deliver({ did: DID, rev: '3l0000000001', commitCid: 'bafysnapshot', records: [], skipped: 0, bytes: 0, since: requestedAt });
  // It is ready a few microtasks later; the hub sends it in its next replay turn (a later
  // event-loop turn, or many later behind a big snapshot or a full send buffer).
  for (let i = 0; i < 10 && subscriber.backfill?.hasOutput !== true; i++) await Promise.resolve();
  assert.equal(subscriber.backfill?.hasOutput, true, 'the backfill output is ready, not sent yet');
  // Before it is sent, the client asks for likes only.
  hub.message(subscriber, Buffer.from(JSON.stringify({ type: 'options_update', payload: { wantedDids: [DID], wantedCollections: [LIKE] } })), false);
  await waitUntil(() => mode() === 'live' && subscriber.backfill?.hasOutput === false, 'the backfill output sent');

  const events = sink.sent.map((text) => JSON.parse(text) as { kind: string; commit?: { collection: string } });
  assert.deepEqual(
    events.filter((event) => event.kind === 'commit').map((event) => event.commit!.collection),
    [LIKE],
    'only the like: the post was sent after the options_update that stopped wanting posts',
  );
});
