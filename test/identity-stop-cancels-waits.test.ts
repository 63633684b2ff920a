/**
 * Under --verify a repo's first DID document is asked for patiently: after a passing failure
 * (a 503, say) resolvePatiently sleeps 1, 2 and 4 s and asks again, and a fetch whose directory
 * asked to wait (a 429's Retry-After, up to 60 s) sleeps until then. Neither sleep was cancelled
 * when the gateway stopped: stop() returned with the timer still running, keeping the process
 * alive, and when it fired the stopped gateway asked the directory again and then read its closed
 * identity cache ("Can not renew a transaction from a closed database", logged as a verification
 * that failed unexpectedly). A stop must end those waits, and the run it ended must not act on
 * what ending them sets off (the held repo's release).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServerResponse } from 'node:http';
import { cleanup } from './support/cleanup.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { localHttpServer } from './support/local-http.ts';
import { waitUntil } from './support/poll.ts';
import { SignedRepo, commitFrameOf } from './support/signed-repo.ts';
import { httpGet } from './support/subscribe-client.ts';
import { capturingLogger, type LogLine } from './support/upstream-harness.ts';

const POST = 'app.bsky.feed.post';

const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

/** How the directory answers, and the lookup's fetches running (or waiting for a slot or the directory) once it sleeps. */
const cases: Record<string, { answer: (res: ServerResponse) => void; inFlight: number }> = {
  // Between fetches, none is running.
  "a retry's sleep after a 503": { answer: (res) => res.writeHead(503).end(), inFlight: 0 },
  // The retry 1 s later is a fetch waiting for the directory's time.
  "the directory's Retry-After wait after a 429": { answer: (res) => res.writeHead(429, { 'retry-after': '60' }).end(), inFlight: 1 },
};

for (const [during, { answer, inFlight }] of Object.entries(cases)) {
  test(`a gateway stopped during ${during} leaves no timer keeping the process alive and logs no error`, async (t) => {
    const defer = cleanup(t);
    const alice = await SignedRepo.create('did:plc:alicestopduringretry000000');
    let requests = 0;
    const { url: plcUrl } = await localHttpServer(t, (_req, res) => {
      requests++;
      answer(res);
    });
    const relay = await FakeRelay.start();
    defer(() => relay.stop());
    const dir = tempDir('contrail-identity-stop-');
    defer(() => dir.remove());
    const logs: LogLine[] = [];
    const gateway = await startTestGateway(relay.url, dir.path, { verify: 'signatures', plcUrl }, { logger: capturingLogger(logs) });
    await relay.waitForConnections(1);
    const post = { action: 'create' as const, collection: POST, rkey: '3laaaaaaaaaaa', record: { $type: POST, text: 'held', createdAt: '2026-12-01T00:00:00.000Z' } };
    relay.push({ seq: 1, bytes: commitFrameOf(await alice.commit(1, [post])) });
    const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await httpGet(gateway.metricsPort, '/metrics')).body.toString())?.[1] ?? 0);
    // Every fetch made so far has failed, and a retry is due (after the first three: the fourth is the last).
    const failed = () => metric('contrail_identity_resolutions_total\\{result="unreachable"\\}');
    await waitUntil(
      async () => requests >= 1 && requests <= 3 && (await failed()) === requests && (await metric('contrail_identity_in_flight')) === inFlight,
      `the new repo's lookup to have failed, and ${during}`,
      15_000,
    );

    await gateway.stop();
    // None was running before it started (a timer the test's own parts kept would be counted too).
    assert.equal(timers(), 0, `the stopped gateway left ${timers()} timer(s) running`);
    // Let what the stop set off settle (the held repo's release): nothing of it may fail.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(logs.filter((line) => line.level >= 50).map((line) => line.msg), [], 'errors logged by the stopped gateway');
  });
}
