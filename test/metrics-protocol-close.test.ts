/**
 * A WebSocket the socket library closes because the client broke a rule (a message over 10 MB, a
 * text message that is not UTF-8: README Errors) is ended by the server for a bad message, and
 * contrail_subscriber_disconnects_total counts it bad_message, as it counts a message that is not
 * JSON; client_closed is for a client that closed or went away itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { seriesValue } from './support/exposition.ts';
import { MAX_CLIENT_MESSAGE_BYTES } from '../src/server/transport.ts';
import { Subscription, httpGet, startRelayGateway, stopRelayGateway, waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

async function disconnects(metricsPort: number, reason: string): Promise<number> {
  const text = (await httpGet(metricsPort, '/metrics')).body.toString();
  return seriesValue(text, `contrail_subscriber_disconnects_total{reason="${reason}"}`);
}

/** Sends a text frame of raw bytes, which `ws` would otherwise refuse to send as not UTF-8. */
function sendRawText(subscription: Subscription, bytes: Buffer): void {
  const sender = (subscription.ws as unknown as { _sender: { sendFrame(frame: Buffer[], cb: () => void): void; constructor: { frame(data: Buffer, options: object): Buffer[] } } })._sender;
  sender.sendFrame(sender.constructor.frame(bytes, { fin: true, rsv1: false, opcode: 1, mask: true, readOnly: false }), () => {});
}

for (const { transport, skip } of await transportsUnderTest()) {
  test(`${transport}: a message over the size limit or not UTF-8 is counted bad_message, not client_closed`, { skip, timeout: 60_000 }, async (t) => {
    const h = await startRelayGateway({ transport });
    const defer = cleanup(t);
    defer(() => stopRelayGateway(h));

    const tooBig = await Subscription.open(h.gateway.port);
    tooBig.send(Buffer.alloc(MAX_CLIENT_MESSAGE_BYTES + 1, 0x20));
    await tooBig.waitClosed();
    const notUtf8 = await Subscription.open(h.gateway.port);
    sendRawText(notUtf8, Buffer.from([0xff, 0xfe]));
    await notUtf8.waitClosed();
    const leaving = await Subscription.open(h.gateway.port);
    await leaving.close();

    await waitUntil(() => h.gateway.server.hub.size === 0, 'the server to have let all three go');
    assert.equal(await disconnects(h.gateway.metricsPort, 'bad_message'), 2, 'the two the server closed for their messages');
    assert.equal(await disconnects(h.gateway.metricsPort, 'client_closed'), 1, 'the one that closed itself');
  });
}
