/**
 * A permessage-deflate offer the server cannot take as written (an unknown parameter, a parameter
 * given twice, a window size out of range) is declined, not refused: RFC 7692 §7 says the server
 * MUST decline such an offer, and a declined offer leaves a valid WebSocket without the extension.
 * The route has already admitted the subscriber (counted `accepted`) when the transport reads
 * the offer, so a refusal there is also an HTTP answer the route never made: on v2 a plain-text
 * body where every refusal before the upgrade is an XRPC JSON error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SUBSCRIBE_EVENTS, upgradeRequest, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const OFFERS_TO_DECLINE = [
  'permessage-deflate; foo=bar',
  'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
  'permessage-deflate; client_max_window_bits=16',
];

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`deflate offers declined over ${transport}`, { skip }, () => {
    test('an offer RFC 7692 says to decline still upgrades, without the extension, on /subscribe and on v2', () =>
      withGateway({ transport }, {}, async ({ gateway }) => {
        for (const path of ['/subscribe', SUBSCRIBE_EVENTS]) {
          for (const offer of OFFERS_TO_DECLINE) {
            const answer = await upgradeRequest(gateway.port, path, { 'sec-websocket-extensions': offer });
            assert.equal(answer.status, 101, `${path} offering ${JSON.stringify(offer)}: HTTP ${answer.status} ${answer.body.toString()}`);
            assert.equal(answer.headers['sec-websocket-extensions'], undefined, `${path} offering ${JSON.stringify(offer)}: declined, on both transports`);
          }
        }
      }));
  });
}
