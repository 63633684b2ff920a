/**
 * Over uWS an HTTP stream whose reader stops reading is cut by uWS's own HTTP idle timeout (~10 s,
 * before the 60 s slow-consumer window; the README's Transports table). With bytes still waiting
 * for that reader, it is a slow consumer: contrail_subscriber_disconnects_total counts it
 * consumer_too_slow, as the watchdog's drops are counted, while a reader that closes its own
 * stream is client_closed — also one that closes it while bytes wait for it (a reader behind,
 * mid-replay or on a slow link, that goes away is no stalled reader uWS cut). Before, every end of
 * a uWS HTTP stream the server did not make itself was counted client_closed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seriesValue } from './support/exposition.ts';
import { HttpStream } from './support/http-stream.ts';
import { ALICE, BOB, LIKE, POST, Upstream, httpGet, recordFor, stats, waitUntil, withGateway, type RelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const uws = (await transportsUnderTest()).find((t) => t.transport === 'uws')!;

async function scrape(metricsPort: number): Promise<(name: string) => number> {
  const text = (await httpGet(metricsPort, '/metrics')).body.toString();
  return (name) => seriesValue(text, name);
}

/**
 * Runs fn with a relay and a gateway over uWS reading it (a 64 KiB send buffer, so a paused
 * reader is soon blocked), its HTTP streams closed and everything stopped afterwards.
 */
async function withUwsGateway(fn: (h: RelayGateway) => Promise<void>): Promise<void> {
  await withGateway({ transport: 'uws' }, { hub: { highWaterBytes: 64 * 1024 } }, async (h) => {
    try {
      await fn(h);
    } finally {
      HttpStream.closeAll();
    }
  });
}

const DISCONNECTS = 'contrail_subscriber_disconnects_total';

/** Posts until the paused reader's socket is full and uWS holds the rest: the hub marks it blocked. */
async function blockPausedReader(up: Upstream, metricsPort: number): Promise<void> {
  let round = 0;
  await waitUntil(
    async () => {
      for (let i = 0; i < 20; i++) up.create(BOB, POST, { ...recordFor(POST, i, BOB), text: `${round} ${i} ${'x'.repeat(50_000)}` });
      round++;
      await up.settle();
      return (await scrape(metricsPort))('contrail_subscribers{wire="ndjson",compression="none",mode="blocked"}') === 1;
    },
    'the paused reader to be blocked',
    60_000,
  );
}

test('over uWS a stalled HTTP stream cut by the idle timeout counts as consumer_too_slow; one its reader closes, client_closed', { skip: uws.skip, timeout: 120_000 }, async () => {
  await withUwsGateway(async ({ gateway, up }) => {
    const before = await scrape(gateway.metricsPort);

    const reader = await HttpStream.open(gateway.port, '/stream.ndjson', `wantedCollections=${LIKE}`);
    const slow = await HttpStream.open(gateway.port, '/stream.ndjson', `wantedCollections=${POST}`);
    slow.socket.pause();
    await waitUntil(async () => (await stats(gateway.port)).subscribers === 2, 'both streams to be subscribed');
    up.create(ALICE, LIKE);
    await reader.waitForEvents(1);
    reader.close();
    await waitUntil(async () => (await stats(gateway.port)).subscribers === 1, 'the closed reader to be gone');

    await blockPausedReader(up, gateway.metricsPort);
    await waitUntil(async () => (await stats(gateway.port)).subscribers === 0, 'uWS to cut the stalled stream', 60_000);

    const after = await scrape(gateway.metricsPort);
    const delta = (reason: string) => after(`${DISCONNECTS}{reason="${reason}"}`) - before(`${DISCONNECTS}{reason="${reason}"}`);
    assert.equal(delta('consumer_too_slow'), 1, 'the stalled stream');
    assert.equal(delta('client_closed'), 1, 'the reader that closed its stream');
  });
});

test('over uWS a reader that closes its HTTP stream while bytes wait for it counts as client_closed, not consumer_too_slow', { skip: uws.skip, timeout: 120_000 }, async () => {
  await withUwsGateway(async ({ gateway, up }) => {
    const before = await scrape(gateway.metricsPort);

    // Behind, as any reader mid-replay or on a slow link is, then gone: a user's Ctrl-C, a client restarting.
    const leaving = await HttpStream.open(gateway.port, '/stream.ndjson', `wantedCollections=${POST}`);
    leaving.socket.pause();
    await waitUntil(async () => (await stats(gateway.port)).subscribers === 1, 'the stream to be subscribed');
    await blockPausedReader(up, gateway.metricsPort);
    leaving.close();
    await waitUntil(async () => (await stats(gateway.port)).subscribers === 0, 'the closed stream to be gone');

    const after = await scrape(gateway.metricsPort);
    const delta = (reason: string) => after(`${DISCONNECTS}{reason="${reason}"}`) - before(`${DISCONNECTS}{reason="${reason}"}`);
    assert.equal(delta('client_closed'), 1, 'the reader closed its own stream');
    assert.equal(delta('consumer_too_slow'), 0, 'uWS cut nothing: it was not idle for its timeout');
  });
});
