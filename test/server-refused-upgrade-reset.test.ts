/**
 * A client whose WebSocket upgrade is refused with an HTTP answer (a 404 path, a 400 parameter,
 * a stream URL asked to upgrade) and which then resets its TCP connection (RST, as a client does
 * that gives up or crashes) must not take the gateway down: any peer on the internet can do it.
 * Run as the real process (`contrail serve`), since the failure is an uncaught exception.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ContrailProcess } from './support/contrail-process.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { httpGet } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Sends an upgrade request, waits for the server's whole answer, then resets the connection. */
function upgradeThenReset(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      );
    });
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      answer += chunk;
      if (answer.includes('\r\n\r\n')) {
        socket.resetAndDestroy();
        resolve(answer.split('\r\n')[0]!);
      }
    });
    socket.on('error', reject);
  });
}

const REFUSED = ['/no-such-page', '/subscribe?cursor=abc', '/xrpc/network.bsky.jetstream.subscribeEvents?wantedDids=x', '/stream.ndjson'];

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a refused upgrade, then a reset, over ${transport}`, { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'contrail-reset-'));
    let relay: FakeRelay | undefined;
    after(async () => {
      await ContrailProcess.killAll();
      await relay?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('leaves the gateway serving', async () => {
      relay = await FakeRelay.start();
      const contrail = ContrailProcess.serve(['--upstream', relay.url, '--data-dir', dir, '--transport', transport]);
      const port = await contrail.waitServing();
      for (const path of REFUSED) {
        const status = await upgradeThenReset(port, path);
        assert.match(status, /^HTTP\/1\.1 4\d\d/, `${path} is refused before the upgrade`);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(contrail.child.exitCode, null, `contrail exited after a reset following the refusal of ${path}:\n${contrail.tail()}`);
      }
      assert.equal((await httpGet(port, '/health')).status, 200);
      const status = await contrail.stop();
      assert.equal(status.code, 0);
    });
  });
}
