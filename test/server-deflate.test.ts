/**
 * permessage-deflate (RFC 7692) on /subscribe and subscribeEvents, once per transport: a client
 * that offers it gets the same messages in fewer bytes; zstd with a deflate offer is zstd on v1
 * (the offer declined, as Jetstream v1 never negotiated it) and a 400 on v2; the
 * operator's cap hands the extension to at most that many subscribers (the rest get plain
 * frames, still a valid stream); and a real browser, which offers deflate by itself, receives a
 * deflated stream with no client code for it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, test } from 'node:test';
import { WebSocket as WsClient } from 'ws';
import { Decompressor } from 'zstd-napi';
import type { Gateway } from '../src/gateway.ts';
import { browserUnavailable, launchBrowser } from './support/browser.ts';
import { FakeRelay } from './support/fake-relay.ts';
import type { tempDir } from './support/gateway.ts';
import {
  SUBSCRIBE_EVENTS,
  Subscription,
  Upstream,
  httpGet,
  readWholeStream,
  settleSubscribers,
  tcpSocket,
  upgradeRequest,
  waitUntil,
  withGateway,
  startRelayGateway,
  stopRelayGateway,
} from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const DEFLATE_OFFER = { 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' };

/** Bytes the client's TCP socket has read: what actually crossed the wire. */
const wireBytes = (s: Subscription) => tcpSocket(s).bytesRead;

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`permessage-deflate over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;

    before(async () => {
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport, maxDeflateSubscribers: 3 }));
      up.synthetic(300, 5, 30);
      await up.settle();
    });

    afterEach(() => Subscription.closeAll());

    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('a client that offers deflate gets the same messages, deflated, on both wires; replay then live', async () => {
      const plain = await Subscription.open(gateway.port, 'cursor=0');
      const deflated = await Subscription.open(gateway.port, 'cursor=0', { perMessageDeflate: true });
      const plainV2 = await Subscription.open(gateway.port, 'cursor=0', { path: SUBSCRIBE_EVENTS });
      const deflatedV2 = await Subscription.open(gateway.port, 'cursor=0', { path: SUBSCRIBE_EVENTS, perMessageDeflate: true });
      assert.deepEqual([plain.ws.extensions, plainV2.ws.extensions], ['', '']);
      assert.match(deflated.ws.extensions, /permessage-deflate/);
      assert.match(deflatedV2.ws.extensions, /permessage-deflate/);
      up.synthetic(50, 6, 30);
      await up.settle();
      const all = await readWholeStream(gateway.port);
      await settleSubscribers(gateway, [plain, deflated, plainV2, deflatedV2]);
      assert.deepEqual(plain.texts, all.map((e) => e.raw));
      assert.deepEqual(deflated.texts, plain.texts);
      assert.equal(plainV2.texts.length, all.length);
      assert.deepEqual(deflatedV2.texts, plainV2.texts);
      for (const [compressed, uncompressed] of [[deflated, plain], [deflatedV2, plainV2]] as const) {
        const ratio = wireBytes(compressed) / wireBytes(uncompressed);
        assert.ok(ratio < 0.8, `deflate shrinks what crosses the wire (${wireBytes(compressed)} vs ${wireBytes(uncompressed)} bytes)`);
      }
      const counts = gateway.server.hub.counts();
      assert.equal(counts.filter((c) => c.compression === 'deflate').reduce((n, c) => n + c.count, 0), 2);
    });

    test('v1: compress=true from a ws client with its defaults (deflate offered) gets zstd frames and no extension; v2: zstd with deflate is a 400', async () => {
      const all = await readWholeStream(gateway.port);
      const dictionary = await httpGet(gateway.port, '/dictionary');
      const decompressor = new Decompressor();
      decompressor.loadDictionary(dictionary.body);
      // What an existing Jetstream v1 client written with ws does: no options, so ws offers deflate.
      const url = `ws://127.0.0.1:${gateway.port}/subscribe?cursor=0`;
      for (const connect of [() => new WsClient(`${url}&compress=true`), () => new WsClient(url, { headers: { 'socket-encoding': 'zstd' } })]) {
        const client = connect();
        const messages: Array<{ data: Buffer; binary: boolean }> = [];
        client.on('message', (data: Buffer, binary: boolean) => messages.push({ data, binary }));
        await once(client, 'open');
        assert.equal(client.extensions, '', 'deflate declined: nothing in the 101 answer');
        await waitUntil(() => messages.length === all.length, `${all.length} zstd frames`);
        assert.ok(messages.every((m) => m.binary));
        assert.deepEqual(messages.map((m) => decompressor.decompress(m.data).toString('utf8')), all.map((e) => e.raw));
        client.close();
        await once(client, 'close');
      }
      const v2 = await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?zstdDictionary=${dictionary.headers['x-zstd-dictionary-id']}`, DEFLATE_OFFER);
      assert.equal(v2.status, 400);
      assert.match(v2.body.toString(), /not both/);
      assert.equal((await upgradeRequest(gateway.port, '/subscribe', DEFLATE_OFFER)).status, 101);
    });

    test('at most --max-deflate-subscribers get the extension; the rest get plain frames until one leaves', async () => {
      const first = await Promise.all([1, 2, 3].map(() => Subscription.open(gateway.port, '', { perMessageDeflate: true })));
      const over = await Subscription.open(gateway.port, '', { perMessageDeflate: true });
      for (const s of first) assert.match(s.ws.extensions, /permessage-deflate/);
      assert.equal(over.ws.extensions, '', 'over the cap: no extension, a plain stream');
      up.synthetic(5, 7, 30);
      await up.settle();
      await settleSubscribers(gateway, [...first, over]);
      assert.equal(over.texts.length, 5);
      assert.deepEqual(first[0]!.texts, over.texts);
      await first[0]!.close();
      await waitUntil(() => gateway.server.hub.size === 3, 'the subscriber to leave');
      const next = await Subscription.open(gateway.port, '', { perMessageDeflate: true });
      assert.match(next.ws.extensions, /permessage-deflate/);
    });
  });

  describe(`permessage-deflate switched off over ${transport}`, { skip }, () => {
    test('--max-deflate-subscribers 0: offers are declined, and zstd with a deflate offer is served', () =>
      withGateway({ transport, maxDeflateSubscribers: 0 }, {}, async ({ gateway }) => {
        const s = await Subscription.open(gateway.port, '', { perMessageDeflate: true });
        assert.equal(s.ws.extensions, '');
        assert.equal((await upgradeRequest(gateway.port, '/subscribe?compress=true', DEFLATE_OFFER)).status, 101);
      }));
  });

  const noBrowser = skip ?? browserUnavailable();
  describe(`a browser on /subscribe over ${transport}`, { skip: noBrowser }, () => {
    test('receives a deflated stream through the plain WebSocket API, and can send options_update', () =>
      withGateway({ transport }, {}, async ({ gateway, up }) => {
        const browser = await launchBrowser();
        try {
          up.synthetic(40, 8, 10);
          await up.settle();
          const all = await readWholeStream(gateway.port);
          const page = await browser.newPage();
          // What a hobbyist's page does: new WebSocket(url), read event.data. Nothing about deflate.
          const received = await page.evaluate(
            (url, count) =>
              new Promise<{ extensions: string; messages: string[] }>((resolve, reject) => {
                const ws = new WebSocket(url);
                const messages: string[] = [];
                ws.onopen = () => ws.send(JSON.stringify({ type: 'options_update', payload: { wantedCollections: [] } }));
                ws.onmessage = (event) => {
                  messages.push(event.data);
                  if (messages.length === count) {
                    resolve({ extensions: ws.extensions, messages });
                    ws.close();
                  }
                };
                ws.onerror = () => reject(new Error('WebSocket error'));
                setTimeout(() => reject(new Error(`only ${messages.length} of ${count} messages`)), 20_000);
              }),
            `ws://127.0.0.1:${gateway.port}/subscribe?cursor=0&requireHello=true`,
            all.length,
          );
          assert.match(received.extensions, /permessage-deflate/, 'the browser negotiated deflate by itself');
          assert.deepEqual(received.messages, all.map((e) => e.raw));
        } finally {
          await browser.close();
        }
      }));
  });
}
