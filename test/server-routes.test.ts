/**
 * uWebSockets.js and `ws` answer every plain HTTP route alike: for each path in routes.ts's
 * HTTP_PATHS (so a new route is covered without touching this file) and an unknown one, with
 * GET, HEAD, OPTIONS and POST, both transports give the same status, the same headers (but the
 * ones each server adds by itself: Date, Connection, Keep-Alive, uWebSockets) and the same body;
 * HEAD has no body on either. Streams (/stream, /stream.ndjson) are compared up to their first
 * message. Requests go over raw sockets, so what is compared is exactly what was sent.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { HTTP_PATHS } from '../src/server/routes.ts';
import { startRelayGateway, stopRelayGateway, waitUntil, type RelayGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Headers a server adds by itself, whatever the route says. */
const SERVER_OWN_HEADERS = new Set(['date', 'connection', 'keep-alive', 'uwebsockets']);
/** A request after a HEAD on the same connection: a HEAD that sent a body would show it before this answer. */
const NEXT_REQUEST = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';

interface Answer {
  status: number;
  /** Lower-case names, sorted, without SERVER_OWN_HEADERS. */
  headers: Array<[string, string]>;
  /** The whole body; a stream's first chunk; for HEAD, whatever came before the next answer. */
  body: string;
}

/** Sends one request on a new connection and reads its answer as it arrives, parsed as it says it is framed. */
function exchange(port: number, request: string, head: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const guard = setTimeout(() => fail(new Error(`no complete answer to ${JSON.stringify(request.split('\r\n')[0])}: ${JSON.stringify(received.toString('latin1'))}`)), 20_000);
    const fail = (err: Error) => {
      clearTimeout(guard);
      socket.destroy();
      reject(err);
    };
    const done = (answer: Answer) => {
      clearTimeout(guard);
      socket.destroy();
      resolve(answer);
    };
    socket.on('error', fail);
    socket.on('connect', () => socket.write(head ? request + NEXT_REQUEST : request));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const answer = parseAnswer(received, head);
      if (answer) done(answer);
    });
  });
}

/** The answer, once all of it (as the framing says) is here; undefined until then. */
function parseAnswer(bytes: Buffer, head: boolean): Answer | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine = '', ...lines] = bytes.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
  const all = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  const headers = all.filter(([name]) => !SERVER_OWN_HEADERS.has(name)).sort(([a], [b]) => a.localeCompare(b));
  const rest = bytes.subarray(headEnd + 4);
  if (head) {
    // Complete once the next answer is (its body is "ok\n"): what came before it is HEAD's body.
    const next = rest.indexOf('HTTP/1.1 ');
    if (next < 0 || !rest.subarray(next).toString('latin1').endsWith('\r\n\r\nok\n')) return undefined;
    return { status, headers, body: rest.subarray(0, next).toString('latin1') };
  }
  const length = all.find(([name]) => name === 'content-length')?.[1];
  if (length !== undefined) return rest.length >= Number(length) ? { status, headers, body: rest.subarray(0, Number(length)).toString('utf8') } : undefined;
  // Chunked (a stream): its first chunk, a complete message of the stream.
  const sizeEnd = rest.indexOf('\r\n');
  if (sizeEnd < 0) return undefined;
  const size = parseInt(rest.subarray(0, sizeEnd).toString('latin1'), 16);
  if (rest.length < sizeEnd + 2 + size) return undefined;
  return { status, headers, body: rest.subarray(sizeEnd + 2, sizeEnd + 2 + size).toString('utf8') };
}

interface Case {
  method: 'GET' | 'HEAD' | 'OPTIONS' | 'POST';
  /** Path and query. A heartbeat makes an NDJSON stream send its first message, and with it its head. */
  target: string;
  headers?: string[];
}

/** Every route with every method, plus what makes each route answer otherwise (a query it refuses, an Accept it serves apart). */
function casesFor(path: string): Case[] {
  const target = `${path}?heartbeat=1s`;
  const cases: Case[] = (['GET', 'HEAD', 'OPTIONS', 'POST'] as const).map((method) => ({ method, target }));
  cases.push({ method: 'GET', target, headers: ['Accept: text/html'] }, { method: 'HEAD', target, headers: ['Accept: text/html'] });
  cases.push({ method: 'GET', target: `${path}?id=abc&limit=0&cursor=soon` }, { method: 'GET', target: `${path}?id=99&compress=true` });
  return cases;
}

function requestOf({ method, target, headers = [] }: Case): string {
  const body = method === 'POST' ? ['Content-Length: 0'] : [];
  return [`${method} ${target} HTTP/1.1`, 'Host: x', ...headers, ...body, '', ''].join('\r\n');
}

const transports = await transportsUnderTest();
const skip = transports.find((t) => t.skip)?.skip;

describe('both transports answer every HTTP route alike', { skip }, () => {
  const gateways = new Map<'uws' | 'ws', Gateway>();
  const started: RelayGateway[] = [];

  before(async () => {
    for (const transport of ['uws', 'ws'] as const) {
      const h = await startRelayGateway({ transport });
      started.push(h);
      gateways.set(transport, h.gateway);
    }
  });

  after(async () => {
    for (const h of started.reverse()) await stopRelayGateway(h);
  });

  for (const path of [...HTTP_PATHS, '/no-such-page']) {
    test(`${path}: the same status, headers and body over uWS and ws`, async () => {
      for (const c of casesFor(path)) {
        const answers: Partial<Record<'uws' | 'ws', Answer>> = {};
        for (const [transport, gateway] of gateways) {
          // A stream from an earlier case is gone on both before /stats counts subscribers.
          await waitUntil(() => gateway.server.hub.size === 0, `${transport}'s earlier streams to close`);
          answers[transport] = await exchange(gateway.port, requestOf(c), c.method === 'HEAD');
        }
        const what = `${c.method} ${c.target} ${c.headers?.join(' ') ?? ''}`;
        assert.deepEqual(answers.uws, answers.ws, what);
        if (c.method === 'HEAD') assert.equal(answers.ws!.body, '', `${what} has no body`);
      }
    });
  }
});
