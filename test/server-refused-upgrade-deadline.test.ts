/**
 * A connection refused with an HTTP answer before any WebSocket exists (an upgrade to a 404 path,
 * a bad parameter, a stream URL; a malformed request) is ended by the server. A peer that never
 * reads that answer, nor closes its side, must not keep the socket and its buffers for ever: the
 * server drops it after a deadline (the ws transport's close timeout, shortened here; uWS cuts an
 * idle HTTP connection itself). Before, the ws transport only called end(), and the socket stayed
 * for as long as the peer did.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const CLOSE_TIMEOUT_MS = 2_000;

const UPGRADE_HEADERS = 'Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

const REFUSED: Array<{ what: string; request: string }> = [
  { what: 'an upgrade to a path that does not exist', request: `GET /no-such-page HTTP/1.1\r\n${UPGRADE_HEADERS}` },
  { what: 'an upgrade with a bad parameter', request: `GET /subscribe?cursor=abc HTTP/1.1\r\n${UPGRADE_HEADERS}` },
  { what: 'an upgrade of a plain HTTP stream', request: `GET /stream.ndjson HTTP/1.1\r\n${UPGRADE_HEADERS}` },
  { what: 'a malformed request', request: 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nbad header line\r\n\r\n' },
];

/**
 * Whether the server process still owns a TCP socket to this client port. Linux's /proc/net/tcp
 * lists the server's end as local = server port, remote = client port; a socket the process
 * closed may linger in the kernel (FIN_WAIT2, TIME_WAIT) but belongs to no one: inode 0.
 */
function serverOwnsSocket(serverPort: number, clientPort: number): boolean {
  const port = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      const [, local, remote] = fields;
      return local?.endsWith(`:${port(serverPort)}`) && remote?.endsWith(`:${port(clientPort)}`) && fields[9] !== '0';
    });
}

/** Connects, sends `request` and stops reading: the answer stays unread, and the client never closes its side. */
function sendAndNeverRead(port: number, request: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => {
      socket.pause();
      socket.write(request, () => resolve(socket));
    });
    socket.on('error', reject);
  });
}

/** Sends `request` and reads the answer's head (or the close, where uWS answers nothing). */
function answerOf(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = connect(port, '127.0.0.1', () => reader.write(request));
    let text = '';
    reader.setEncoding('latin1');
    reader.on('data', (chunk: string) => {
      text += chunk;
      if (!text.includes('\r\n\r\n')) return;
      reader.destroy();
      resolve(text);
    });
    reader.on('close', () => resolve(text));
    reader.on('error', reject);
  });
}

for (const { transport, skip } of await transportsUnderTest()) {
  // The cases side by side: each waits for a deadline (uWS's idle timeout is about 10 s), not for the others.
  describe(`a refused connection whose peer never reads, over ${transport}`, { skip, concurrency: true }, () => {
    const local = tempDir();
    let relay: FakeRelay;
    let gateway: Gateway;
    const sockets: Socket[] = [];
    before(async () => {
      relay = await FakeRelay.start();
      gateway = await startTestGateway(relay.url, local.path, { transport }, { closeTimeoutMs: CLOSE_TIMEOUT_MS });
    });
    after(async () => {
      for (const socket of sockets) socket.destroy();
      await gateway?.stop();
      await relay?.stop();
      local.remove();
    });

    for (const { what, request } of REFUSED) {
      test(`${what}: the server drops the socket after a deadline`, async () => {
        const socket = await sendAndNeverRead(gateway.port, request);
        sockets.push(socket);
        // The same request from a client that reads shows what the silent one was answered.
        const answer = await answerOf(gateway.port, request);
        if (transport === 'ws' || !what.startsWith('a malformed')) assert.match(answer, /^HTTP\/1\.1 4\d\d /, `${what} is answered with a 4xx`);
        await waitUntil(() => !serverOwnsSocket(gateway.port, socket.localPort!), `the server to drop the socket of ${what} whose peer does not read`, 30_000);
      });
    }
  });
}
