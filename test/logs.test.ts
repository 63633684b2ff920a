/**
 * Logs for people: JSON lines unless stdout is a terminal, readable lines when it is, and a
 * one-line status on a timer from a real gateway (events in, subscribers, lag, buffer span).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { pino } from 'pino';
import { createLogger, duration, startStatusLog } from '../src/logs.ts';
import { EventStore } from '../src/store/index.ts';
import { cleanup } from './support/cleanup.ts';
import { tempDir } from './support/gateway.ts';
import { POST, Subscription, startRelayGateway, stopRelayGateway, waitUntil } from './support/subscribe-client.ts';

/** A stream that keeps what is written; `isTTY` as a terminal's stdout has it. */
function captured(isTTY: boolean): Writable & { isTTY: boolean; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return Object.assign(stream, { isTTY, lines });
}

test('JSON lines when stdout is not a terminal; readable lines (level name, time, message, fields) when it is', async () => {
  const pipe = captured(false);
  createLogger('info', pipe).info({ port: 6008 }, 'serving /subscribe');
  await new Promise((resolve) => setImmediate(resolve));
  const record = JSON.parse(pipe.lines[0]!);
  assert.equal(record.level, 30);
  assert.equal(record.msg, 'serving /subscribe');
  assert.equal(record.port, 6008);

  const terminal = captured(true);
  const logger = createLogger('info', terminal);
  logger.info({ port: 6008 }, 'serving /subscribe');
  logger.debug('below the level');
  const text = stripVTControlCharacters(terminal.lines.join('\n'));
  assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.*: .*serving \/subscribe/);
  assert.match(text, /port: 6008/);
  assert.ok(!text.includes('{"level"'), 'not JSON');
  assert.ok(!text.includes('below the level'));
});

test('durations read as people write them', () => {
  assert.equal(duration(59), '59s');
  assert.equal(duration(3_600 * 24 + 61), '1d 0h 1m');
  assert.equal(duration(5_400), '1h 30m');
});

test('a status line on every interval: events/s in, subscribers, upstream lag, buffer span', async () => {
  const sink = captured(false);
  const h = await startRelayGateway({}, { logger: pino({ level: 'info' }, sink), statusIntervalMs: 300 });
  const { gateway, up } = h;
  try {
    const subscriber = await Subscription.open(gateway.port);
    for (let i = 0; i < 20; i++) up.create(`did:plc:${'status'.padEnd(24, 'a')}`, POST);
    await up.settle();
    await subscriber.waitForCount(20);
    const statuses = () => sink.lines.map((line) => JSON.parse(line)).filter((record) => record.status);
    await waitUntil(() => statuses().some((s) => s.eventsPerSecond > 0) && statuses().at(-1).eventsPerSecond === 0, 'a status with events, then a quiet one');
    const busy = statuses().find((s) => s.eventsPerSecond > 0);
    assert.equal(busy.subscribers, 1);
    assert.equal(busy.bufferEvents, 20);
    assert.equal(typeof busy.upstreamLagSeconds, 'number');
    assert.match(busy.msg, /^status: [\d,]+ events\/s in, 1 subscribers, upstream lag \d+\.\ds, buffer \d+s \(20 events\)$/);
    await subscriber.close();
  } finally {
    await stopRelayGateway(h);
  }
});

// A cluster follower, or a leader whose term ended, does not read the relay: its lag is NaN for
// good, and "no upstream event yet" would read as a relay that has not sent anything.
test('on a node that does not read the relay, the status line says it follows the cluster stream', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir();
  defer(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  defer(() => store.close());
  const sink = captured(false);
  let readsUpstream = false;
  const statusLog = startStatusLog(pino({ level: 'info' }, sink), { store, subscribers: () => 0, upstreamLagSeconds: async () => NaN, readsUpstream: () => readsUpstream }, 20);
  defer(() => statusLog.stop());
  const messages = () => sink.lines.map((line) => JSON.parse(line)).filter((record) => record.status).map((record) => String(record.msg));

  await waitUntil(() => messages().length > 0, 'a status line');
  assert.match(messages()[0]!, /^status: 0 events\/s in, 0 subscribers, following the cluster stream \(not reading the relay\), buffer 0s \(0 events\)$/);

  readsUpstream = true;
  const seen = messages().length;
  await waitUntil(() => messages().length > seen + 1, 'a status line while reading the relay');
  assert.match(messages().at(-1)!, /, no upstream event yet, /);
});
