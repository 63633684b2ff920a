/**
 * A client that sends its request and then half-closes its side of the connection (`nc -N`,
 * `shutdown(SHUT_WR)` in a script) is taken as gone, as the README says: node:http (the ws
 * transport) and uWS both end a connection whose client sent FIN, so its /stream or
 * /stream.ndjson ends at once, with no last line saying why, and its subscriber is freed. Raw
 * TCP on 127.0.0.1, per transport.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NOBODY = `did:plc:${'nobody'.padEnd(24, 'a')}`;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`HTTP streams and a half-closed request over ${transport}`, { skip }, () => {
    for (const path of ['/stream.ndjson', '/stream']) {
      test(`${path}: the client's FIN ends the stream, with no last line, and frees the subscriber`, { timeout: 30_000 }, () =>
        withGateway({ transport }, {}, async ({ gateway }) => {
          const socket = connect(gateway.port, '127.0.0.1');
          await once(socket, 'connect');
          const received: Buffer[] = [];
          socket.on('data', (chunk: Buffer) => received.push(chunk));
          socket.write(`GET ${path}?wantedDids=${NOBODY} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
          socket.end(); // FIN: nothing more to send, still reading
          await once(socket, 'close');
          const answer = Buffer.concat(received).toString('utf8');
          assert.doesNotMatch(answer, /"type":"error"|event: close/, 'no line says why the stream ended');
          await waitUntil(() => gateway.server.hub.size === 0, 'the subscriber to be freed');
        }));
    }
  });
}
