/**
 * What a relay says in its own words — an #info frame's name and message, an error frame's, the
 * strings a malformed frame carries (its type, an op's path, a repo that is no DID) — is logged
 * and shown in /ready cut to 200 characters, as the verifier's lines already are, and #info and
 * error frames are logged the first of each kind, then once per interval, as drops are. A frame
 * may be 5 MB: logged whole, once per frame, a relay wrote megabytes of log per frame it sent,
 * as fast as it sent them.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess } from './support/contrail-process.ts';
import { commitFrame, encodeFrame, errorFrame, infoFrame, tidFor } from './support/frames.ts';
import { tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';
import { ALICE, POST, httpGet, recordFor, stats } from './support/subscribe-client.ts';

const LONG = 'x'.repeat(200_000);
/** Longest log line accepted: the fields around the cut strings, with room to spare. */
const MAX_LINE = 4_000;

test("a relay's strings are logged cut to 200 characters, and its #info and error frames once per interval, not once each", async (t) => {
  const defer = cleanup(t);
  let refuse = false;
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  defer(() => new Promise((resolve) => server.close(resolve)));
  defer(() => server.clients.forEach((socket) => socket.terminate()));
  const sockets: WebSocket[] = [];
  server.on('connection', (socket) => {
    if (refuse) {
      socket.send(errorFrame(LONG, LONG));
      socket.close();
    } else {
      sockets.push(socket);
    }
  });
  const dir = tempDir();
  defer(() => dir.remove());
  const contrail = ContrailProcess.serve(['--upstream', `ws://127.0.0.1:${(server.address() as { port: number }).port}`, '--data-dir', dir.path]);
  defer(() => contrail.stop());
  const port = await contrail.waitServing();
  await waitUntil(() => sockets.length === 1, 'contrail to connect');
  const [relay] = sockets;

  const frames = 10;
  for (let i = 0; i < frames; i++) {
    relay!.send(infoFrame('OutdatedCursor', LONG));
    relay!.send(infoFrame(LONG, LONG));
    relay!.send(errorFrame('ConsumerTooSlow', LONG));
    relay!.send(errorFrame(LONG, LONG));
  }
  relay!.send(encodeFrame({ op: 1, t: LONG }, { seq: 1 })); // unknown_type
  relay!.send(commitFrame({ seq: 2, repo: LONG, rev: tidFor(2), ops: [] })); // bad_field: no DID
  relay!.send(commitFrame({ seq: 3, repo: ALICE, rev: tidFor(3), ops: [{ action: 'delete', path: `${POST}/${LONG}` }] })); // bad_path
  relay!.send(commitFrame({ seq: 4, repo: ALICE, rev: tidFor(4), ops: [{ action: 'create', path: `${POST}/${tidFor(4)}`, record: recordFor(POST, 4, ALICE) }] }));
  await waitUntil(async () => (await stats(port)).upstreamCursor?.seq === 4, 'the last frame to be stored');

  const said = (pattern: RegExp) => contrail.logs.filter((line) => pattern.test(line.msg)).length;
  const kinds = [/dropped upstream input/, /upstream info|older than its backfill window/, /error frame/];
  await waitUntil(() => kinds.every((kind) => said(kind) > 0), 'a log line for drops, #info frames and error frames');
  const longest = contrail.logs.reduce((most, line) => Math.max(most, JSON.stringify(line).length), 0);
  assert.ok(longest <= MAX_LINE, `the longest log line is ${longest} characters`);
  const frameLines = said(/upstream info|older than its backfill window|error frame/);
  assert.ok(frameLines < frames, `${frameLines} log lines for ${4 * frames} #info and error frames: once per kind and interval, not once each`);

  // A relay that answers every connect with such an error frame: /ready names it, cut.
  refuse = true;
  relay!.terminate();
  let ready = await httpGet(port, '/ready');
  await waitUntil(async () => {
    ready = await httpGet(port, '/ready');
    return ready.body.toString().includes('upstream sent error');
  }, '/ready to name the error frame', 60_000);
  assert.ok(ready.body.length <= 1_000, `/ready says ${ready.body.length} bytes`);
});
