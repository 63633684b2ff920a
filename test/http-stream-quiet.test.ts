/**
 * An HTTP stream whose filter matches nothing for a while, without the opt-in heartbeat, is not
 * ended by the server, and its client gets the whole response head at once, not with the first
 * event: a client with a headers timeout (fetch's) would fail on a quiet stream. node:http's
 * client is the judge here, since it sees a response only once the head is complete (uWS sent the
 * status line and headers but not the head's end until the first body byte; on `ws`, node:http
 * held the head back until the first write).
 */
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import type { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const NOBODY = `did:plc:${'nobody'.padEnd(24, 'a')}`;

for (const { transport, skip } of await transportsUnderTest()) {
  // Both streams side by side: each waits out its own quiet time.
  describe(`a quiet HTTP stream over ${transport}`, { skip, concurrency: true }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    before(async () => {
      ({ relay, dir, gateway } = await startRelayGateway({ transport }));
    });
    after(() => stopRelayGateway({ relay, dir, gateway }));

    for (const [path, opening] of [
      ['/stream.ndjson', '{"type":"open"}\n'],
      ['/stream', ': contrail event stream\n\n'],
    ] as const) {
      test(`${path}: the response arrives before any event, and the stream stays open without a matching event`, async () => {
        const startedMs = Date.now();
        let response: IncomingMessage | undefined;
        let body = '';
        let endedAtMs: number | undefined;
        const req = request({ host: '127.0.0.1', port: gateway.port, path: `${path}?wantedDids=${NOBODY}`, agent: false }, (res) => {
          response = res;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('close', () => (endedAtMs = Date.now() - startedMs));
        });
        req.on('error', () => {});
        req.end();
        // Nothing will ever match: without the fix the head never comes, and this times out.
        await waitUntil(() => response !== undefined, 'the whole response head, with no event to send');
        const status = response!.statusCode;
        // Then quiet for a while: the stream stays open, and nothing but its opening comes.
        await new Promise((resolve) => setTimeout(resolve, 4_000));
        const [endedBeforeMs, received] = [endedAtMs, body];
        req.destroy();
        assert.equal(status, 200);
        assert.equal(endedBeforeMs, undefined, `the server ended the quiet stream after ${endedBeforeMs} ms`);
        assert.equal(received, opening, 'the stream opens with a line clients skip, and nothing else comes');
      });
    }
  });
}
