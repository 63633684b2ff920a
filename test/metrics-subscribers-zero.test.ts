/**
 * contrail_subscribers reads 0, not "no data", for a wire, compression and mode with nobody in it.
 * An operator graphs sum(contrail_subscribers) and alerts when it drops to 0: a series that
 * vanishes when its last subscriber leaves (or never exists before the first one comes) turns the
 * sum into an empty result, which a graph draws as a gap and an alert on `== 0` never sees.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { HttpStream } from './support/http-stream.ts';
import { ALICE, POST, Subscription, httpGet, startRelayGateway, stats, stopRelayGateway, tcpSocket, waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Every contrail_subscribers sample in one scrape: its labels → value. */
async function subscriberSeries(metricsPort: number): Promise<Map<string, number>> {
  const text = (await httpGet(metricsPort, '/metrics')).body.toString();
  const series = new Map<string, number>();
  for (const [, labels = '', value = ''] of text.matchAll(/^contrail_subscribers(\{[^}]*\}) (\S+)$/gm)) series.set(labels, Number(value));
  return series;
}

const V1_LIVE = '{wire="v1",compression="none",mode="live"}';
const NDJSON_LIVE = '{wire="ndjson",compression="none",mode="live"}';

for (const { transport, skip } of await transportsUnderTest()) {
  test(`${transport}: contrail_subscribers has a 0 series before any subscriber and after the last one is gone`, { skip, timeout: 60_000 }, async (t) => {
    const h = await startRelayGateway({ transport });
    const defer = cleanup(t);
    defer(() => stopRelayGateway(h));
    defer(() => HttpStream.closeAll());

    const before = await subscriberSeries(h.gateway.metricsPort);
    assert.equal(before.get(V1_LIVE), 0, 'no subscriber yet: the v1 live series is 0');
    assert.equal(before.get(NDJSON_LIVE), 0, 'no subscriber yet: the ndjson live series is 0');

    h.up.create(ALICE, POST);
    await h.up.settle();
    const socket = await Subscription.open(h.gateway.port, 'cursor=0');
    const stream = await HttpStream.open(h.gateway.port, '/stream.ndjson', 'cursor=0');
    await socket.waitForCount(1);
    await stream.waitForEvents(1);
    await waitUntil(async () => (await subscriberSeries(h.gateway.metricsPort)).get(V1_LIVE) === 1, 'the WebSocket subscriber to be live');
    const during = await subscriberSeries(h.gateway.metricsPort);
    assert.equal(during.get(NDJSON_LIVE), 1);

    // Gone without a goodbye, as a client that crashed or lost its network.
    tcpSocket(socket).destroy();
    stream.socket.destroy();
    await waitUntil(async () => (await stats(h.gateway.port)).subscribers === 0, 'both subscribers to be gone');
    const after = await subscriberSeries(h.gateway.metricsPort);
    assert.equal(after.get(V1_LIVE), 0, 'the v1 live series reads 0, not absent');
    assert.equal(after.get(NDJSON_LIVE), 0, 'the ndjson live series reads 0, not absent');
    assert.equal([...after.values()].reduce((sum, value) => sum + value, 0), 0);
  });
}
