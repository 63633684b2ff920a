/**
 * A WebSocket upgrade with a handshake header RFC 6455 §4.1 forbids is a bad request, and both
 * transports must say so the same way, counted as `bad_request`:
 * - a Sec-WebSocket-Key missing or not 16 bytes in base64: a 400 naming the header, plain text on
 *   /subscribe and an XRPC InvalidRequest on subscribeEvents. uWS did not take such a request as an
 *   upgrade and answered 426 "needs a WebSocket upgrade" to a client that had sent one; `ws`
 *   answered its own plain-text 400, which no metric counted.
 * - a Sec-WebSocket-Version missing or not one contrail speaks: 426 with `Sec-WebSocket-Version: 13`
 *   (§4.2.2), naming the header. uWS opened the socket whatever the version said; `ws` answered its
 *   own uncounted 400.
 * A raw socket sends the headers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { SUBSCRIBE_EVENTS, httpGet, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

interface Answer {
  status: number;
  head: string;
  body: string;
}

/** The answer to an upgrade of `path` sent with `key` and `version` (each header left out if undefined), read off a raw socket. */
async function upgradeWith(port: number, path: string, key: string | undefined, version: string | undefined): Promise<Answer> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    const lines = [
      'Host: 127.0.0.1',
      'Connection: Upgrade',
      'Upgrade: websocket',
      ...(version === undefined ? [] : [`Sec-WebSocket-Version: ${version}`]),
      ...(key === undefined ? [] : [`Sec-WebSocket-Key: ${key}`]),
    ];
    socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
    let received = Buffer.alloc(0);
    for (;;) {
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = received.subarray(0, end).toString('latin1');
        const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
        if (received.length >= end + 4 + length) {
          return { status: Number(head.split(' ')[1]), head, body: received.subarray(end + 4, end + 4 + length).toString() };
        }
      }
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      received = Buffer.concat([received, chunk]);
    }
  } finally {
    socket.destroy();
  }
}

const GOOD_KEY = randomBytes(16).toString('base64');
const BAD_KEYS = [undefined, 'not-a-key', randomBytes(15).toString('base64'), randomBytes(17).toString('base64')];
const BAD_VERSIONS = [undefined, '12', '14', '13, 8', 'thirteen'];

/** The v2 path's XRPC error message, after checking the error name. */
function invalidRequestMessage(answer: Answer): string {
  const { error, message } = JSON.parse(answer.body) as { error: string; message: string };
  assert.equal(error, 'InvalidRequest');
  return message;
}

async function badRequestsCounted(metricsPort: number, wire: string): Promise<number> {
  const metrics = (await httpGet(metricsPort, '/metrics')).body.toString();
  return Number(new RegExp(`^contrail_subscriber_connections_total\\{wire="${wire}",result="bad_request"\\} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0);
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a malformed WebSocket handshake over ${transport}`, { skip }, () => {
    test('a bad Sec-WebSocket-Key is a 400 naming the header, on both WebSocket paths, counted as a bad request', { timeout: 60_000 }, async (t) => {
      const h = await startRelayGateway({ transport });
      cleanup(t)(() => stopRelayGateway(h));
      const { gateway } = h;
      for (const key of BAD_KEYS) {
        const v1 = await upgradeWith(gateway.port, '/subscribe', key, '13');
        assert.equal(v1.status, 400, `/subscribe with key ${key}: ${v1.body}`);
        assert.match(v1.body, /Sec-WebSocket-Key/, `/subscribe with key ${key}`);

        const v2 = await upgradeWith(gateway.port, SUBSCRIBE_EVENTS, key, '13');
        assert.equal(v2.status, 400, `subscribeEvents with key ${key}: ${v2.body}`);
        assert.match(invalidRequestMessage(v2), /Sec-WebSocket-Key/);
      }
      for (const wire of ['v1', 'v2']) assert.equal(await badRequestsCounted(gateway.metricsPort, wire), BAD_KEYS.length, `${wire} bad requests`);
    });

    test('a missing or unsupported Sec-WebSocket-Version is a 426 naming version 13, on both WebSocket paths, counted as a bad request', { timeout: 60_000 }, async (t) => {
      const h = await startRelayGateway({ transport });
      cleanup(t)(() => stopRelayGateway(h));
      const { gateway } = h;
      for (const version of BAD_VERSIONS) {
        const v1 = await upgradeWith(gateway.port, '/subscribe', GOOD_KEY, version);
        assert.equal(v1.status, 426, `/subscribe with version ${version}: ${v1.status} ${v1.body}`);
        assert.match(v1.head, /^sec-websocket-version: 13$/im, `/subscribe with version ${version}`);
        assert.match(v1.body, /Sec-WebSocket-Version/, `/subscribe with version ${version}`);

        const v2 = await upgradeWith(gateway.port, SUBSCRIBE_EVENTS, GOOD_KEY, version);
        assert.equal(v2.status, 426, `subscribeEvents with version ${version}: ${v2.status} ${v2.body}`);
        assert.match(v2.head, /^sec-websocket-version: 13$/im);
        assert.match(invalidRequestMessage(v2), /Sec-WebSocket-Version/);
      }
      for (const wire of ['v1', 'v2']) assert.equal(await badRequestsCounted(gateway.metricsPort, wire), BAD_VERSIONS.length, `${wire} bad requests`);

      // Version 13 with a good key still opens a socket on both paths.
      for (const path of ['/subscribe', SUBSCRIBE_EVENTS]) assert.equal((await upgradeWith(gateway.port, path, GOOD_KEY, '13')).status, 101, path);
    });
  });
}
