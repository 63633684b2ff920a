/**
 * A client that offers to upgrade to HTTP/2 over cleartext (`Upgrade: h2c`: `curl --http2` on an
 * http:// URL, Java's HttpClient by default) is served its stream over HTTP/1.1, as every other
 * route serves it: a server may ignore an upgrade it does not speak (RFC 9110 7.8). Only a
 * WebSocket upgrade on a stream's path is refused, since that client wants /subscribe. Raw TCP on
 * 127.0.0.1, per transport.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { POST, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const ALICE = `did:plc:${'alice'.padEnd(24, 'a')}`;

/** Sends one request and reads the answer until the server closes the connection, or its chunked body ends. */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no whole answer within 20 s: ${JSON.stringify(answer)}`));
    }, 20_000);
    const done = () => {
      clearTimeout(guard);
      socket.destroy();
      resolve(answer);
    };
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8');
      if (answer.endsWith('\r\n0\r\n\r\n')) done();
    });
    socket.on('close', done);
    socket.on('error', done);
    socket.write(request);
  });
}

const H2C_OFFER = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`HTTP streams asked for with an h2c upgrade offer over ${transport}`, { skip }, () => {
    test('/stream.ndjson and /stream are served over HTTP/1.1; a WebSocket upgrade on them is still refused', { timeout: 60_000 }, () =>
      withGateway({ transport }, {}, async ({ gateway, up }) => {
        up.create(ALICE, POST);
        await up.settle();
        for (const [path, event] of [
          ['/stream.ndjson', `{"did":"${ALICE}"`],
          ['/stream', `data: {"did":"${ALICE}"`],
        ] as const) {
          const answer = await exchange(gateway.port, `GET ${path}?cursor=0&limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n${H2C_OFFER}\r\n`);
          assert.match(answer, /^HTTP\/1\.1 200 /, `${path}: served, not refused: ${JSON.stringify(answer.slice(0, 200))}`);
          assert.ok(answer.includes(event), `${path}: the stored event is sent`);
        }
        const webSocket = await exchange(
          gateway.port,
          `GET /stream.ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
        );
        assert.match(webSocket, /^HTTP\/1\.1 400 /);
        assert.match(webSocket, /is a plain HTTP stream: request it without an Upgrade header/);
      }));
  });
}
