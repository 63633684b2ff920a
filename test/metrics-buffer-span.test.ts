/**
 * The buffer's span (oldest and newest event, events, bytes) is read from the store once per
 * /metrics scrape, however many gauges show it: the oldest event walks the block directory's
 * first entry, the events and bytes take LMDB's stats of four tables (size), each once. A later
 * scrape reads them again, so it shows what changed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { Entry } from '../src/events/index.ts';
import { EventStore, registerBufferGauges } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';

const events = (from: number, count: number): Entry[] =>
  Array.from({ length: count }, (_, i) => {
    const timeUs = 1_700_000_000_000_000 + (from + i) * 1_000;
    return { timeUs, did: 'did:plc:span', kind: 'commit', collection: 'app.bsky.feed.post', json: Buffer.from(`{"time_us":${timeUs}}`) };
  });

function gauge(text: string, name: string): number {
  const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
  assert.ok(value !== undefined, `${name} is shown`);
  return Number(value);
}

test('a /metrics scrape reads the buffer span once for its four gauges (its size and its oldest event once each), and the next scrape reads it again', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-metrics-span-');
  defer(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20, fsync: false, blockEvents: 100 });
  defer(() => store.close());
  await store.commit({ entries: events(0, 250), revs: new Map() });
  let sizes = 0;
  let oldests = 0;
  const counted = {
    size: () => {
      sizes++;
      return store.size();
    },
    oldest: () => {
      oldests++;
      return store.oldest();
    },
    get newestTimeUs() {
      return store.newestTimeUs;
    },
    get unreadableReads() {
      return store.unreadableReads;
    },
    get workerUnreadableReads() {
      return store.workerUnreadableReads;
    },
    hotLog: store.hotLog,
    get sealState() {
      return store.sealState;
    },
    get didIndex() {
      return store.didIndex;
    },
    get didIndexMarkWriteFailures() {
      return store.didIndexMarkWriteFailures;
    },
    get upstreamCursor() {
      return store.upstreamCursor;
    },
    onCommitted: (listener: Parameters<EventStore['onCommitted']>[0]) => store.onCommitted(listener),
  };
  const registry = new Registry();
  registerBufferGauges(registry, counted);

  let text = await registry.metrics();
  assert.deepEqual({ sizes, oldests }, { sizes: 1, oldests: 1 }, 'one read of each for the scrape');
  let span = store.span();
  assert.equal(gauge(text, 'contrail_store_oldest_event_timestamp_seconds'), span.oldestTimeUs! / 1e6);
  assert.equal(gauge(text, 'contrail_store_newest_event_timestamp_seconds'), span.newestTimeUs! / 1e6);
  assert.equal(gauge(text, 'contrail_store_buffered_events'), 250);
  assert.equal(gauge(text, 'contrail_store_bytes'), span.bytes);

  await store.commit({ entries: events(250, 50), revs: new Map() });
  await nextTurn();
  text = await registry.metrics();
  assert.deepEqual({ sizes, oldests }, { sizes: 2, oldests: 2 }, 'the next scrape reads them again');
  span = store.span();
  assert.equal(gauge(text, 'contrail_store_newest_event_timestamp_seconds'), span.newestTimeUs! / 1e6);
  assert.equal(gauge(text, 'contrail_store_buffered_events'), 300);
  assert.equal(gauge(text, 'contrail_store_bytes'), span.bytes);
});
