/**
 * The hub's send-buffer policy, with a sink whose buffered bytes the test sets: a subscriber
 * past its high-water mark waits until its sink has written out everything it held. uWS keeps
 * the memory of a socket's send buffer at its peak for the socket's lifetime and compacts the
 * buffer only when it empties, so topping up a half-drained buffer would let the memory each
 * subscriber keeps grow past the high-water mark (see the server's design note).
 */
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { tempDir } from '../../test/support/gateway.ts';
import { waitUntil } from '../../test/support/poll.ts';
import type { Entry } from '../events/index.ts';
import { EventStore } from '../store/index.ts';
import { EventCompressor } from './compression.ts';
import { parseFilter } from './filter.ts';
import { ServerMetrics } from './metrics.ts';
import { Subscriber } from './subscriber.ts';
import { SubscriberHub } from './subscribers.ts';
import type { SubscriberSink } from './transport.ts';
import { v1Wire } from './wire.ts';

const DID = 'did:plc:alice000000000000000000a';

function entryAt(timeUs: number): Entry {
  const json = Buffer.from(`{"did":"${DID}","time_us":${timeUs},"kind":"identity","identity":{"did":"${DID}","handle":"${'h'.repeat(1_000)}.test","seq":${timeUs}}}`);
  return { timeUs, did: DID, kind: 'identity', collection: null, json };
}

/** A sink that holds what it is sent until the test says the network took it. */
class HeldSink implements SubscriberSink {
  readonly sent: string[] = [];
  held = 0;
  send(data: Uint8Array): void {
    this.sent.push(Buffer.from(data).toString());
    this.held += data.byteLength;
  }
  bufferedAmount(): number {
    return this.held;
  }
  cork(fn: () => void): void {
    fn();
  }
  close(): void {}
  terminate(): void {}
}

const nextTurns = async (turns: number) => {
  for (let i = 0; i < turns; i++) await new Promise(setImmediate);
};

test('a blocked subscriber resumes only once its sink has written out everything it held, and then gets every event once, in order', async (t) => {
  const dir = tempDir('contrail-hub-');
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 1 << 20 });
  t.after(async () => {
    await store.close();
    dir.remove();
  });
  const entries = Array.from({ length: 60 }, (_, i) => entryAt(1_000_000 + i));
  const expected = entries.map((entry) => entry.json.toString());
  await store.commit({ entries, revs: new Map() });

  const highWaterBytes = 8 * 1024;
  const hub = new SubscriberHub({ store, logger: pino({ level: 'silent' }), metrics: new ServerMetrics(new Registry(), () => []), highWaterBytes });
  t.after(() => hub.stop());
  const compressor = new EventCompressor(readFileSync(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname));
  const sink = new HeldSink();
  const subscriber = hub.open(
    { filter: parseFilter({}), wire: v1Wire(compressor, false), deflate: false, position: 0, requireHello: false, remoteAddress: '127.0.0.1' },
    sink,
  );
  // Read through a function: the subscriber's mode changes behind TypeScript's narrowing.
  const mode = () => subscriber.mode;
  await waitUntil(() => mode() === 'blocked', 'the replay to fill the sink past its high-water mark');
  const sentWhenFull = sink.sent.length;
  assert.ok(sentWhenFull < entries.length && sink.held > highWaterBytes);

  // The network took all but a few bytes: a drain now must not send more.
  sink.held = 10;
  hub.drain(subscriber);
  // A resumed replay sends in its next turn (replay-turns.ts): two turns later it would have.
  await nextTurns(2);
  assert.equal(sink.sent.length, sentWhenFull, 'nothing is added to a buffer that still holds bytes');
  assert.equal(mode(), 'blocked');

  for (let drains = 0; mode() !== 'live'; drains++) {
    assert.ok(drains < entries.length, 'the replay reaches the tip');
    sink.held = 0;
    hub.drain(subscriber);
    await waitUntil(() => mode() === 'blocked' || mode() === 'live', 'the next replay step');
  }
  assert.deepEqual(sink.sent, expected);
});

test('a subscriber sends a range of a batch: entries[from..to) in order, stopping at its limit or its high-water mark, its position and counts following what went out', () => {
  const compressor = new EventCompressor(readFileSync(new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname));
  const metrics = new ServerMetrics(new Registry(), () => []);
  const entries = Array.from({ length: 10 }, (_, i) => entryAt(2_000_000 + i));
  const open = (limit?: number) => {
    const sink = new HeldSink();
    const admission = { filter: parseFilter({}), wire: v1Wire(compressor, false), deflate: false, position: 0, requireHello: false, remoteAddress: '127.0.0.1', ...(limit ? { limit } : {}) };
    return { sink, subscriber: new Subscriber(admission, sink, metrics, 0) };
  };
  const json = (from: number, to: number) => entries.slice(from, to).map((entry) => entry.json.toString());

  const { sink, subscriber } = open();
  const before = { ...subscriber.tally };
  assert.equal(subscriber.send(entries, Infinity, 0, undefined, 3, 7), 'all');
  assert.deepEqual(sink.sent, json(3, 7));
  assert.equal(subscriber.position, entries[6]!.timeUs);
  assert.equal(subscriber.tally.events - before.events, 4);
  assert.equal(subscriber.tally.bytes - before.bytes, sink.held);

  const limited = open(2);
  assert.equal(limited.subscriber.send(entries, Infinity, 0, undefined, 4), 'limit');
  assert.deepEqual(limited.sink.sent, json(4, 6));
  assert.equal(limited.subscriber.position, entries[5]!.timeUs);

  const small = open();
  assert.equal(small.subscriber.send(entries, entries[0]!.json.byteLength, 0, undefined, 1), 'full');
  assert.deepEqual(small.sink.sent, json(1, 3), 'the send that passes the mark is the last');
  assert.equal(small.subscriber.position, entries[2]!.timeUs);
});
