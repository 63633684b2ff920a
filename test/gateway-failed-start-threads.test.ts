/**
 * startGateway creates the verify stage's CheckPool (--verify with --verify-workers) and starts
 * its threads before the server, the metrics endpoint and ingest start. A start that failed after
 * that (a port in use) threw to the caller with the pool's threads still running: idle, they do
 * not keep the process alive, but a program that runs the gateway in-process and starts it again
 * (on another port, after a while) gained --verify-workers threads, each with its own V8 heap, with
 * every failed start, for as long as it ran. The CLI exits on a failed start, so this is the
 * library caller's case. Found by the verification review.
 *
 * The threads are counted as the kernel lists them (/proc/self/task): Node keeps no list of the
 * workers a module started.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';

const WORKERS = 2;
const NO_UPSTREAM = 'ws://127.0.0.1:9';

function threads(): number {
  return readdirSync('/proc/self/task').length;
}

test('a start that fails on a port in use leaves none of its verify worker threads running', { skip: process.platform !== 'linux' && 'counts threads in /proc', timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const blocker = createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  defer(() => new Promise((resolve) => blocker.close(resolve)));
  const busy = (blocker.address() as AddressInfo).port;
  const dir = tempDir('contrail-failed-start-');
  defer(() => dir.remove());
  const config = { verify: 'signatures', verifyWorkers: WORKERS } as const;

  // A start and stop first, so the threads any gateway leaves (libuv's pool) are already there.
  const gateway = await startTestGateway(NO_UPSTREAM, dir.path, config);
  await gateway.stop();
  const before = threads();

  for (const ports of [{ port: busy }, { metricsPort: busy }]) {
    await assert.rejects(startTestGateway(NO_UPSTREAM, dir.path, { ...config, ...ports }), new RegExp(`127\\.0\\.0\\.1:${busy} is already in use`));
  }
  let now = threads();
  await waitUntil(() => (now = threads()) <= before, `the failed starts' threads to end (${before} threads before them)`, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; ${now} are running`);
  });
});
