/**
 * A /stream.ndjson whose filter matches nothing for a while, without the opt-in heartbeat, is not
 * ended by the server, and its client sees the response start (status and headers) at once, not
 * with the first event: a client with a headers timeout (fetch's) would fail on a quiet stream.
 * (On `ws`, node:http held the head back until the first write.)
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { transportsUnderTest } from './support/transports.ts';

const NOBODY = `did:plc:${'nobody'.padEnd(24, 'a')}`;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a quiet /stream.ndjson over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    before(async () => {
      relay = await FakeRelay.start();
      dir = tempDir();
      gateway = await startTestGateway(relay.url, dir.path, { transport });
    });
    after(async () => {
      await gateway.stop();
      await relay.stop();
      dir.remove();
    });

    test('its status line arrives at once, and it stays open without a matching event', async () => {
      const socket = connect(gateway.port, '127.0.0.1');
      let received = '';
      let closedAtMs: number | undefined;
      const startedMs = Date.now();
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('close', () => (closedAtMs = Date.now() - startedMs));
      socket.on('error', () => {});
      socket.write(`GET /stream.ndjson?wantedDids=${NOBODY} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const after2s = received;
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      socket.destroy();
      assert.equal(closedAtMs, undefined, `the server closed the quiet stream after ${closedAtMs} ms; it had sent ${JSON.stringify(received)}`);
      assert.match(after2s, /^HTTP\/1\.1 200/, `no response start within 2 s (got ${JSON.stringify(after2s)})`);
    });
  });
}
