/**
 * Review test (fails on main, ws transport; uWS cuts it by itself): an HTTP stream (/stream, /stream.ndjson) whose reader stops
 * reading is dropped with ConsumerTooSlow (the hub forgets it, so it no longer counts against
 * --max-subscribers or --max-connections-per-ip), but its connection is ended with res.end(),
 * which waits for the reader to take what is queued — with no deadline. The socket and the
 * bytes queued for it (the kernel's send buffer and the transport's) stay for as long as the
 * peer keeps the connection open. A WebSocket dropped the same way is cut after 30 s
 * (uws-transport.ts CLOSE_TIMEOUT_MS; `ws`'s own close timeout).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { HttpStream } from './support/http-stream.ts';
import { ALICE, BOB, LIKE, POST, Upstream, recordFor, stats, waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Whether the server still has an established TCP connection to this client port. */
function serverHolds(serverPort: number, clientPort: number): boolean {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`], { encoding: 'utf8' });
  return out.trim() !== '';
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`an HTTP stream dropped as too slow over ${transport}`, { skip }, () => {
    test('its connection is cut within a deadline (as a WebSocket’s is after 30 s), not held while the peer does not read', async () => {
      const local = tempDir();
      const relay = await FakeRelay.start();
      const gateway = await startTestGateway(relay.url, local.path, { transport }, { hub: { highWaterBytes: 64 * 1024, slowWindowMs: 1500 } });
      try {
        await relay.waitForConnections(1);
        const up = new Upstream(relay, () => gateway.port);
        const slow = await HttpStream.open(gateway.port, '/stream', '');
        slow.socket.pause();
        const clientPort = slow.socket.localPort!;
        await waitUntil(async () => (await stats(gateway.port)).subscribers === 1, 'the reader to be subscribed');
        for (let round = 0; round < 10; round++) {
          for (let i = 0; i < 20; i++) up.create(BOB, POST, { ...recordFor(POST, i, BOB), text: `${round} ${i} ${'x'.repeat(50_000)}` });
          await up.settle();
        }
        await waitUntil(
          async () => {
            up.create(ALICE, LIKE, { ...recordFor(LIKE, 0, ALICE), padding: 'z'.repeat(50_000) });
            await new Promise((resolve) => setTimeout(resolve, 50));
            return (await stats(gateway.port)).subscribers === 0;
          },
          'the slow reader to be dropped',
          60_000,
        );
        assert.ok(serverHolds(gateway.port, clientPort), 'right after the drop the server still holds the connection (its goodbye is queued)');
        await new Promise((resolve) => setTimeout(resolve, 40_000));
        assert.equal(serverHolds(gateway.port, clientPort), false, 'the server still holds the connection of a stream it dropped 40 s ago');
      } finally {
        HttpStream.closeAll();
        await gateway.stop();
        await relay.stop();
        local.remove();
      }
    });
  });
}
