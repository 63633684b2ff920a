/**
 * A subscriber counts as a deflate subscriber (a --max-deflate-subscribers slot, the `deflate`
 * label of contrail_subscribers) only if permessage-deflate was negotiated, i.e. the 101 answer
 * names it. Offers the server does not take must not be counted: an unknown extension whose
 * name merely contains "permessage-deflate", an offer capping the server's window, an offer with
 * a parameter RFC 7692 does not define. Counted anyway, a few such clients fill the cap, and a
 * browser that offers deflate by itself then gets a plain stream while nothing is deflated. For the
 * same reason v2's "zstdDictionary with a deflate offer is a 400" holds for offers taken only.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SUBSCRIBE_EVENTS, Subscription, httpGet, upgradeRequest, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

/** Offers both transports answer without the extension (deflate-offer.ts). */
const UNTAKEN_OFFERS = ['permessage-deflate-x', 'PERMESSAGE-DEFLATE', 'permessage-deflate; server_max_window_bits=10', 'permessage-deflate; foo=bar'];

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`deflate subscribers counted over ${transport}`, { skip }, () => {
    test('only connections whose 101 answer names permessage-deflate count as deflate; a browser-like offer then still gets it', () =>
      withGateway({ transport, maxDeflateSubscribers: 2 }, {}, async ({ gateway }) => {
        const open: Subscription[] = [];
        const negotiated = () => open.filter((s) => s.ws.extensions.includes('permessage-deflate')).length;
        for (const path of ['/subscribe', SUBSCRIBE_EVENTS]) {
          for (const offer of UNTAKEN_OFFERS) {
            const s = await Subscription.open(gateway.port, '', { path, headers: { 'sec-websocket-extensions': offer } });
            open.push(s);
            await waitUntil(() => gateway.server.hub.size === open.length, 'the subscriber to be open');
            assert.equal(
              gateway.server.hub.deflating,
              negotiated(),
              `${path} offering ${JSON.stringify(offer)} (101 answer: ${JSON.stringify(s.ws.extensions)}): deflate subscribers counted vs negotiated`,
            );
          }
        }
        const labelled = gateway.server.hub.counts().filter((c) => c.compression === 'deflate').reduce((n, c) => n + c.count, 0);
        assert.equal(labelled, negotiated(), 'subscribers labelled deflate');
        if (negotiated() === 0) {
          const browserLike = await Subscription.open(gateway.port, '', { perMessageDeflate: true });
          assert.match(browserLike.ws.extensions, /permessage-deflate/, 'a deflate slot is free, so an offer the transport takes gets deflate');
        }
      }));

    test('v2: zstdDictionary beside an offer that is not taken streams zstd; beside one taken it is a 400', () =>
      withGateway({ transport }, {}, async ({ gateway }) => {
        const id = String((await httpGet(gateway.port, '/dictionary')).headers['x-zstd-dictionary-id']);
        for (const offer of [...UNTAKEN_OFFERS, 'foo; bar="permessage-deflate"']) {
          const answer = await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?zstdDictionary=${id}`, { 'sec-websocket-extensions': offer });
          assert.equal(answer.status, 101, `offering ${JSON.stringify(offer)}: HTTP ${answer.status} ${answer.body.toString()}`);
        }
        const taken = await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?zstdDictionary=${id}`, { 'sec-websocket-extensions': 'foo, permessage-deflate' });
        assert.equal(taken.status, 400);
        assert.match(taken.body.toString(), /not both/);
      }));
  });
}
