/**
 * Once the gateway is shutting down, a request on a connection kept alive from before gets
 * `503 shutting down`, on both transports: a browser's EventSource reconnects at once over the
 * same connection when the server ends its stream, and a stream admitted then would look live
 * against a gateway that is going away (its page never reaching the next one).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { transportsUnderTest } from './support/transports.ts';

const STREAM_REQUEST = 'GET /stream.ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n';

/** Resolves with everything the socket received once `done` holds for it, or once it closes. */
function receiveUntil(socket: Socket, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const finish = () => {
      socket.off('data', onData);
      socket.off('close', finish);
      resolve(text);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (done(text)) finish();
    };
    socket.on('data', onData);
    socket.on('close', finish);
  });
}

for (const { transport, skip } of await transportsUnderTest()) {
  test(`${transport}: a stream asked for on a kept-alive connection while the gateway stops gets 503 shutting down`, { skip, timeout: 60_000 }, async () => {
    const relay = await FakeRelay.start();
    const dir = tempDir();
    const gateway = await startTestGateway(relay.url, dir.path, { transport });
    const socket = connect(gateway.port, '127.0.0.1');
    try {
      const first = receiveUntil(socket, (text) => text.includes('\r\n\r\n'));
      socket.write(STREAM_REQUEST);
      assert.match(await first, /^HTTP\/1\.1 200/, 'the first stream admitted');

      const ended = receiveUntil(socket, (text) => text.endsWith('0\r\n\r\n'));
      const stopping = gateway.stop();
      const goodbye = await ended;
      assert.match(goodbye, /shut/i, 'the first stream told why it ended');

      const second = receiveUntil(socket, (text) => text.includes('\r\n\r\n'));
      if (!socket.destroyed) socket.write(STREAM_REQUEST);
      const answer = await second;
      // The connection closed without an answer is a refusal too; a 200 is the bug.
      assert.doesNotMatch(answer, /^HTTP\/1\.1 200/, 'no stream admitted while stopping');
      if (answer !== '') assert.match(answer, /^HTTP\/1\.1 503[^]*shutting down/, 'the refusal says why');
      await stopping;
    } finally {
      socket.destroy();
      await relay.stop();
      dir.remove();
    }
  });
}
