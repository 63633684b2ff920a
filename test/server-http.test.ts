/**
 * The HTTP and WebSocket edges of each transport, on raw sockets: HEAD, malformed requests,
 * request heads up to Jetstream v1's 1 MB (10,000 wantedDids in the URL), and the close codes
 * and reasons for client messages that break WebSocket's rules. Where uWebSockets.js cannot
 * answer (its parser and frame limits are native and not configurable in the build we use),
 * the test pins what it does today, so a change of library shows up here; the README's
 * Transports section lists the same differences.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import type { tempDir } from './support/gateway.ts';
import { POST, Subscription, Upstream, httpGet, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const did = (n: number) => `did:plc:${String(n).padStart(24, 'x')}`;

interface RawResult {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** How the connection ended: the server closed it or reset it ('open': a piece of an answer cut out by the caller). */
  end: 'closed' | 'reset' | 'open';
}

/**
 * Writes the request in the given pieces (pausing between them), then — unless `halfClose` is
 * false — ends our side of the connection, and collects everything the server sends until it
 * closes its side. A server answers what it read before closing on our end, so an empty answer
 * means it had none: "no answer" is proved by the close, not by a wait. Both transports close
 * promptly once we end; one that neither answers nor closes fails the test after 20 s.
 */
function rawRequest(port: number, pieces: Array<string | Buffer>, { gapMs = 30, halfClose = true } = {}): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const text = () => Buffer.concat(chunks).toString('latin1');
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server neither closed the connection nor reset it within 20 s; it sent ${JSON.stringify(text().slice(0, 200))}`));
    }, 20_000);
    let settled = false;
    const finish = (end: RawResult['end']) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      socket.destroy();
      resolve({ text: text(), end });
    };
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => finish('reset'));
    socket.on('close', () => finish('closed'));
    const writePieces = async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        await new Promise((r) => setTimeout(r, gapMs));
      }
      if (halfClose && !socket.destroyed) socket.end();
    };
    socket.on('connect', () => void writePieces());
  });
}

function upgradeHead(pathAndQuery: string): string {
  return [
    `GET ${pathAndQuery} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: websocket',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    '',
    '',
  ].join('\r\n');
}

/** Splits a string in two TCP writes, so the server's parser sees it in two reads. */
function inTwo(text: string): string[] {
  const half = Math.floor(text.length / 2);
  return [text.slice(0, half), text.slice(half)];
}

function statusOf(result: RawResult): number | undefined {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(result.text);
  return match ? Number(match[1]) : undefined;
}

function bodyOf(result: RawResult): string {
  return result.text.slice(result.text.indexOf('\r\n\r\n') + 4);
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`HTTP and WebSocket edges over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;

    before(async () => {
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport }));
    });

    afterEach(() => Subscription.closeAll());

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('HEAD answers with the GET\'s headers and Content-Length but no body; the kept-alive connection stays in step', async () => {
      for (const path of ['/dictionary', '/health', '/stats', '/no-such-page']) {
        const get = await httpGet(gateway.port, path);
        const result = await rawRequest(gateway.port, [`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n']);
        const [head = '', next] = result.text.split(/(?=HTTP\/1\.1 )/);
        assert.equal(statusOf({ text: head, end: 'open' }), get.status, `HEAD ${path}`);
        assert.ok(head.endsWith('\r\n\r\n'), `HEAD ${path} has no body (${head.length} bytes)`);
        assert.match(head, new RegExp(`\r\ncontent-length: ${get.body.byteLength}\r\n`, 'i'), `HEAD ${path} reports the GET's length`);
        assert.ok(next?.startsWith('HTTP/1.1 200') && next.endsWith('ok\n'), `the next request on the connection is answered: ${JSON.stringify(next)}`);
      }
    });

    test('malformed requests: a 400 with a reason on ws; uWS gives some no answer at all and serves others (pinned)', async () => {
      const cases: Array<[name: string, request: string, uws: 'served' | 'dropped']> = [
        ['conflicting Content-Length', 'POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 'served'],
        ['bare LF line ends', 'GET /health HTTP/1.1\nHost: x\n\n', 'dropped'],
        ['obs-fold header', 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n', 'dropped'],
        ['missing Host', 'GET /health HTTP/1.1\r\n\r\n', 'dropped'],
        ['NUL in a header', 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n', 'dropped'],
      ];
      for (const [name, request, uws] of cases) {
        const result = await rawRequest(gateway.port, [request]);
        if (transport === 'ws') {
          assert.equal(statusOf(result), 400, `${name}: ${JSON.stringify(result.text.slice(0, 80))}`);
          assert.match(bodyOf(result), /^(malformed HTTP request: |bad request: )\S/, `${name}: the reason`);
        } else if (uws === 'served') {
          // uWS reads one of the lengths and answers the request (405: only GET is served here).
          assert.equal(statusOf(result), 405, `${name} on uWS`);
        } else {
          assert.equal(result.text, '', `${name} on uWS: no answer at all (${result.end})`);
        }
      }
      // Transfer-Encoding: xchunked: node:http reads no body and answers (405); uWS the same.
      const xchunked = await rawRequest(gateway.port, ['POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n']);
      assert.equal(statusOf(xchunked), 405);
    });

    test('HTTP/1.0, and a request pipelined behind a stream: served on ws; uWS answers neither and closes the connection (pinned)', async () => {
      up.create(did(1), POST);
      await up.settle();
      const http10 = await rawRequest(gateway.port, ['GET /health HTTP/1.0\r\nHost: x\r\n\r\n']);
      // Not ended by us: on uWS the close is its own. The stream replays one stored event and ends (limit=1).
      const pipelined = await rawRequest(
        gateway.port,
        ['GET /stream.ndjson?cursor=0&limit=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
        { halfClose: false },
      );
      if (transport === 'ws') {
        assert.equal(statusOf(http10), 200);
        assert.equal(bodyOf(http10), 'ok\n');
        const [stream = '', health = ''] = pipelined.text.split(/(?=HTTP\/1\.1 )/);
        assert.equal(statusOf({ text: stream, end: 'open' }), 200);
        assert.match(stream, new RegExp(`\\{"did":"${did(1)}"`), 'the stream sent its event');
        assert.ok(health.startsWith('HTTP/1.1 200') && health.endsWith('ok\n'), `the pipelined request is answered after the stream: ${JSON.stringify(health)}`);
      } else {
        assert.equal(http10.text, '', 'uWS: no answer to HTTP/1.0');
        assert.equal(pipelined.text, '', 'uWS: the stream unanswered');
        assert.notEqual(pipelined.end, 'open', 'uWS closed the connection');
      }
    });

    test('a request target in absolute form (RFC 9112 3.2.2) is served on ws; uWS gives no answer (pinned)', async () => {
      const health = await rawRequest(gateway.port, [`GET http://127.0.0.1:${gateway.port}/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`]);
      if (transport === 'ws') {
        up.create(did(2), POST);
        await up.settle();
        // Not ended by us (a half-close ends a stream at once): limit=1 ends it after the stored event.
        const stream = await rawRequest(gateway.port, ['GET HTTP://127.0.0.1/stream.ndjson?cursor=0&limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'], { halfClose: false });
        assert.equal(statusOf(health), 200);
        assert.equal(bodyOf(health), 'ok\n');
        assert.equal(statusOf(stream), 200, `the stream's query is read: ${JSON.stringify(stream.text.slice(0, 120))}`);
        assert.match(stream.text, /\r\n0\r\n\r\n$/, 'limit=1 ended it');
      } else {
        assert.equal(health.text, '', 'uWS: no answer to an absolute-form target');
      }
    });

    test('10,000 wantedDids in the URL: accepted on ws (1 MiB request heads, as Jetstream v1); on uWS dropped without an answer (pinned)', async () => {
      const dids = Array.from({ length: 10_000 }, (_, i) => did(i));
      const query = dids.map((d) => `wantedDids=${encodeURIComponent(d)}`).join('&');
      assert.ok(query.length > 400_000, `the URL is long (${query.length} bytes)`);
      if (transport === 'ws') {
        const s = await Subscription.open(gateway.port, query);
        up.create(did(9_999), POST);
        up.create(did(10_000), POST);
        up.create(did(0), POST);
        await up.settle();
        await s.waitForCount(2);
        await s.roundTrip();
        assert.deepEqual(s.events.map((e) => e.did), [did(9_999), did(0)]);
        const tooLong = await rawRequest(gateway.port, [upgradeHead(`/subscribe?${query}&${query}&${query}`)]);
        assert.equal(statusOf(tooLong), 431);
        assert.match(bodyOf(tooLong), /over 1 MiB: send long wantedDids lists with options_update/);
      } else {
        // Not ended by us: uWS closes the connection itself.
        const result = await rawRequest(gateway.port, inTwo(upgradeHead(`/subscribe?${query}`)), { halfClose: false });
        assert.equal(result.text, '', 'uWS gives no HTTP status');
        assert.notEqual(result.end, 'open');
      }
      // What uWS does read: a head of up to 4 KB across TCP reads (a larger one only in one read).
      const short = await rawRequest(gateway.port, inTwo(upgradeHead(`/subscribe?${dids.slice(0, 60).map((d) => `wantedDids=${d}`).join('&')}`)));
      assert.equal(statusOf(short), 101, '60 DIDs (2.6 kB) in two reads');
      const longer = await rawRequest(gateway.port, inTwo(upgradeHead(`/subscribe?${dids.slice(0, 200).map((d) => `wantedDids=${d}`).join('&')}`)));
      if (transport === 'ws') assert.equal(statusOf(longer), 101, '200 DIDs (8.6 kB) in two reads');
      else assert.equal(longer.text, '', 'uWS: 200 DIDs (8.6 kB) in two reads get no answer');
    });

    test('a message over 10 MB, and a text message that is not UTF-8, close with 1009/1007 and a reason on ws; uWS drops the connection (1006, pinned)', async () => {
      const big = await Subscription.open(gateway.port);
      big.send(Buffer.alloc(10 * 1024 * 1024 + 1, 0x20));
      const bigClosed = await big.waitClosed();
      const badUtf8 = await Subscription.open(gateway.port);
      badUtf8.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), false);
      const utf8Closed = await badUtf8.waitClosed();
      if (transport === 'ws') {
        assert.deepEqual(bigClosed, { code: 1009, reason: 'a message was larger than 10 MB' });
        assert.deepEqual(utf8Closed, { code: 1007, reason: 'a text message was not valid UTF-8' });
      } else {
        assert.deepEqual(bigClosed, { code: 1006, reason: '' });
        assert.deepEqual(utf8Closed, { code: 1006, reason: '' });
      }
    });
  });
}
