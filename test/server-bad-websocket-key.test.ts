/**
 * A WebSocket upgrade whose Sec-WebSocket-Key is missing or not 16 bytes in base64 (RFC 6455
 * §4.1) is a bad request, and both transports must say so the same way: a 400 naming the header,
 * plain text on /subscribe and an XRPC InvalidRequest on subscribeEvents, counted as
 * `bad_request`. uWS did not take such a request as an upgrade and answered 426 "needs a
 * WebSocket upgrade" to a client that had sent one; `ws` answered its own plain-text 400, which no
 * metric counted. A raw socket sends the key, or none.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { SUBSCRIBE_EVENTS, httpGet, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** The status and body of the answer to an upgrade sent with `key` (none if undefined), read off a raw socket. */
async function upgradeWithKey(port: number, path: string, key: string | undefined): Promise<{ status: number; body: string }> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    const lines = ['Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', ...(key === undefined ? [] : [`Sec-WebSocket-Key: ${key}`])];
    socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
    let received = Buffer.alloc(0);
    for (;;) {
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = received.subarray(0, end).toString('latin1');
        const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
        if (received.length >= end + 4 + length) {
          return { status: Number(head.split(' ')[1]), body: received.subarray(end + 4, end + 4 + length).toString() };
        }
      }
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      received = Buffer.concat([received, chunk]);
    }
  } finally {
    socket.destroy();
  }
}

const BAD_KEYS = [undefined, 'not-a-key', randomBytes(15).toString('base64'), randomBytes(17).toString('base64')];

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a malformed Sec-WebSocket-Key over ${transport}`, { skip }, () => {
    test('is a 400 naming the header, on both WebSocket paths, counted as a bad request', { timeout: 60_000 }, async (t) => {
      const h = await startRelayGateway({ transport });
      cleanup(t)(() => stopRelayGateway(h));
      const { gateway } = h;
      for (const key of BAD_KEYS) {
        const v1 = await upgradeWithKey(gateway.port, '/subscribe', key);
        assert.equal(v1.status, 400, `/subscribe with key ${key}: ${v1.body}`);
        assert.match(v1.body, /Sec-WebSocket-Key/, `/subscribe with key ${key}`);

        const v2 = await upgradeWithKey(gateway.port, SUBSCRIBE_EVENTS, key);
        assert.equal(v2.status, 400, `subscribeEvents with key ${key}: ${v2.body}`);
        const { error, message } = JSON.parse(v2.body) as { error: string; message: string };
        assert.equal(error, 'InvalidRequest');
        assert.match(message, /Sec-WebSocket-Key/);
      }
      const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
      for (const wire of ['v1', 'v2']) {
        const counted = new RegExp(`^contrail_subscriber_connections_total\\{wire="${wire}",result="bad_request"\\} (\\S+)$`, 'm').exec(metrics)?.[1];
        assert.equal(Number(counted), BAD_KEYS.length, `${wire} bad requests`);
      }
    });
  });
}
