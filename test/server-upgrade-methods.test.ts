/**
 * A WebSocket upgrade must be a GET (RFC 6455 section 4.1). One sent with another method to
 * /subscribe or subscribeEvents gets the answer that method gets without the upgrade, on both
 * transports alike: a 405 naming GET and HEAD, and for HEAD the 426 a GET without an upgrade gets,
 * with no body. Raw TCP on 127.0.0.1, per transport.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { SUBSCRIBE_EVENTS, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Sends the request, then a GET /health on the same connection, and returns what came before that GET's answer. */
function answerBefore(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 20 s: ${JSON.stringify(received)}`));
    }, 20_000);
    const done = () => {
      clearTimeout(guard);
      socket.destroy();
      const next = received.indexOf('HTTP/1.1', 1);
      resolve(next < 0 ? received : received.slice(0, next));
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.endsWith('ok\n') || received.indexOf('HTTP/1.1', 1) >= 0) done();
    });
    socket.on('close', done);
    socket.on('error', done);
    socket.write(request + 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  });
}

const upgrade = (method: string, path: string) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`WebSocket upgrades with another method than GET over ${transport}`, { skip }, () => {
    test('HEAD gets the 426 without a body; POST, PUT, DELETE and OPTIONS a 405 naming GET and HEAD', { timeout: 60_000 }, () =>
      withGateway({ transport }, {}, async ({ gateway }) => {
        for (const path of ['/subscribe', SUBSCRIBE_EVENTS]) {
          const head = await answerBefore(gateway.port, upgrade('HEAD', path));
          assert.match(head, /^HTTP\/1\.1 426 /, `HEAD ${path}: ${JSON.stringify(head)}`);
          assert.ok(head.endsWith('\r\n\r\n'), `HEAD ${path} has no body: ${JSON.stringify(head)}`);
          for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
            const answer = await answerBefore(gateway.port, upgrade(method, path));
            assert.match(answer, /^HTTP\/1\.1 405 /, `${method} ${path}: ${JSON.stringify(answer)}`);
            assert.match(answer, /\r\nallow: GET, HEAD\r\n/i, `${method} ${path} names the methods served`);
            assert.ok(answer.endsWith('only GET is served here\n'), `${method} ${path} says why: ${JSON.stringify(answer)}`);
          }
        }
      }));
  });
}
