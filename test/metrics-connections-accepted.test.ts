/**
 * contrail_subscriber_connections_total{result="accepted"} counts subscribers that were opened, so
 * accepted minus every disconnect is the subscribers connected. A WebSocket handshake the socket
 * library refuses after contrail's own checks passed (a Sec-WebSocket-Protocol that is no list of
 * tokens: `ws` answers 400) opens no subscriber and must not count as accepted. uWS takes any
 * protocol header: it refuses nothing contrail accepted, so the test runs on ws only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { Subscription, httpGet, startRelayGateway, stopRelayGateway, upgradeRequest } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** The sum of every sample of a family (all its label sets). */
async function total(metricsPort: number, family: string): Promise<number> {
  const text = (await httpGet(metricsPort, '/metrics')).body.toString();
  let sum = 0;
  for (const [, value = ''] of text.matchAll(new RegExp(`^${family}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(value);
  return sum;
}

const ACCEPTED = 'contrail_subscriber_connections_total{wire="v1",result="accepted"}';

for (const { transport, skip } of await transportsUnderTest()) {
  const uwsRefusesNothing = transport === 'uws' ? 'uWS refuses no handshake that contrail accepted' : undefined;
  test(`${transport}: a handshake refused below contrail's checks is not counted accepted`, { skip: skip ?? uwsRefusesNothing, timeout: 60_000 }, async (t) => {
    const h = await startRelayGateway({ transport });
    const defer = cleanup(t);
    defer(() => stopRelayGateway(h));
    const accepted = () => total(h.gateway.metricsPort, ACCEPTED);

    const refused = await upgradeRequest(h.gateway.port, '/subscribe', { 'sec-websocket-protocol': 'not a token list' });
    assert.equal(refused.status, 400, 'ws refuses the handshake');
    assert.equal(await accepted(), 0, 'a refused handshake opens no subscriber');

    const subscription = await Subscription.open(h.gateway.port);
    assert.equal(await accepted(), 1);
    await subscription.close();
    assert.equal(h.gateway.server.hub.size, 0);
    assert.equal(await accepted(), await total(h.gateway.metricsPort, 'contrail_subscriber_disconnects_total'), 'every accepted subscriber left once');
  });
}
