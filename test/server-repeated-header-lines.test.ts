/**
 * A list-valued header sent as several field lines is one comma-joined list (RFC 9110 §5.3), and
 * both transports must read it so: `ws` gets it joined from node:http, uWS hands each line to the
 * route on its own. Read as its last line only, two Sec-WebSocket-Extensions lines with a taken
 * offer first and a declined one after were declined over uWS and taken over ws; two
 * Sec-WebSocket-Protocol lines answered different subprotocols; and behind two trusted proxies, a
 * proxy that adds its own X-Forwarded-For line instead of appending to the client's made every
 * client behind it count as that proxy's address. A raw socket writes the lines exactly.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { SUBSCRIBE_EVENTS, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

interface RawAnswer {
  status: number;
  /** Lower-case name → each line's value, in order. */
  headers: Map<string, string[]>;
  socket: Socket;
}

/** A WebSocket upgrade written by hand, `lines` as given ("Name: value" each); resolves with the answer's head, the socket left open. */
async function rawUpgrade(port: number, path: string, lines: string[]): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const key = randomBytes(16).toString('base64');
  const request = ['Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13', ...lines];
  socket.write(`GET ${path} HTTP/1.1\r\n${request.join('\r\n')}\r\n\r\n`);
  // Not `for await`: leaving that loop would destroy the socket the caller may keep.
  const head = await new Promise<string>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      resolve(received.subarray(0, end).toString('latin1'));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => reject(new Error(`${path}: the connection ended before an answer`)));
  });
  const [statusLine = '', ...fields] = head.split('\r\n');
  const headers = new Map<string, string[]>();
  for (const field of fields) {
    const colon = field.indexOf(':');
    const name = field.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), field.slice(colon + 1).trim()]);
  }
  return { status: Number(statusLine.split(' ')[1]), headers, socket };
}

/** The answer to an upgrade whose socket is closed at once. */
async function upgradeWith(port: number, path: string, lines: string[]): Promise<RawAnswer> {
  const answer = await rawUpgrade(port, path, lines);
  answer.socket.destroy();
  return answer;
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`list-valued headers sent as several lines over ${transport}`, { skip }, () => {
    test('Sec-WebSocket-Extensions: the offers of every line are read, so a taken offer on any line is taken', () =>
      withGateway({ transport }, {}, async ({ gateway }) => {
        const cases: Array<{ lines: string[]; taken: boolean }> = [
          { lines: ['permessage-deflate', 'permessage-deflate; server_max_window_bits=10'], taken: true },
          { lines: ['permessage-deflate; client_max_window_bits=8', 'permessage-deflate'], taken: true },
          { lines: ['permessage-deflate; foo=bar', 'permessage-deflate'], taken: true },
          { lines: ['permessage-deflate; foo=bar', 'permessage-deflate; client_max_window_bits=16'], taken: false },
        ];
        for (const path of ['/subscribe', SUBSCRIBE_EVENTS]) {
          for (const { lines, taken } of cases) {
            const answer = await upgradeWith(gateway.port, path, lines.map((offer) => `Sec-WebSocket-Extensions: ${offer}`));
            const what = `${path} offering ${JSON.stringify(lines)} on two lines`;
            assert.equal(answer.status, 101, what);
            assert.deepEqual(answer.headers.get('sec-websocket-extensions')?.map((e) => e.split(';')[0]), taken ? ['permessage-deflate'] : undefined, what);
          }
        }
      }));

    test('Sec-WebSocket-Protocol: /subscribe answers the first offered of all lines; v2 finds xrpc.v1.json on any line', () =>
      withGateway({ transport }, {}, async ({ gateway }) => {
        const v1 = await upgradeWith(gateway.port, '/subscribe', ['Sec-WebSocket-Protocol: first-offered', 'Sec-WebSocket-Protocol: second-offered']);
        assert.equal(v1.status, 101);
        assert.deepEqual(v1.headers.get('sec-websocket-protocol'), ['first-offered']);
        const v2 = await upgradeWith(gateway.port, SUBSCRIBE_EVENTS, ['Sec-WebSocket-Protocol: xrpc.v1.json', 'Sec-WebSocket-Protocol: something-else']);
        assert.equal(v2.status, 101);
        assert.deepEqual(v2.headers.get('sec-websocket-protocol'), ['xrpc.v1.json']);
      }));

    test('X-Forwarded-For: behind two trusted proxies, a line the nearer proxy added is one more hop of the same list', (t) =>
      withGateway({ transport, maxConnectionsPerIp: 1, trustProxy: 2 }, {}, async ({ gateway }) => {
        const defer = cleanup(t);
        // The outer proxy appended 203.0.113.x to the client's header; the nearer one added its own line.
        const viaProxies = (client: string) => [`X-Forwarded-For: 198.51.100.1, ${client}`, 'X-Forwarded-For: 10.0.0.1'];
        const first = await rawUpgrade(gateway.port, '/subscribe', viaProxies('203.0.113.1'));
        defer(() => first.socket.destroy());
        assert.equal(first.status, 101);
        await waitUntil(() => gateway.server.hub.size === 1, 'the first client to be open');
        assert.equal((await upgradeWith(gateway.port, '/subscribe', viaProxies('203.0.113.1'))).status, 429, 'the same client: its one slot is taken');
        assert.equal((await upgradeWith(gateway.port, '/subscribe', viaProxies('203.0.113.2'))).status, 101, 'another client behind the same proxies has its own slot');
      }));
  });
}
