/**
 * The README's limit for `wantedCollections` is "100 after de-duplication (a collection covered
 * by one of your prefixes counts once)". A prefix and 100 collections it covers are, after
 * de-duplication, one entry (parseFilter drops the covered ones itself), so the filter is within
 * the limit; parseFilter counts them before dropping them and answers 400 "101 given".
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import type { tempDir } from './support/gateway.ts';
import { startRelayGateway, stopRelayGateway, upgradeRequest } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`the wantedCollections limit over ${transport}`, { skip }, () => {
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    before(async () => {
      ({ relay, dir, gateway } = await startRelayGateway({ transport }));
    });
    after(() => stopRelayGateway({ relay, dir, gateway }));

    test('counts collections covered by a prefix once, after de-duplication, as the README says', async () => {
      const covered = Array.from({ length: 100 }, (_, i) => `wantedCollections=a.b.c${i}`).join('&');
      const answer = await upgradeRequest(gateway.port, `/subscribe?wantedCollections=a.b.*&${covered}`);
      assert.equal(answer.status, 101, `a.b.* and 100 collections under it were refused: ${answer.status} ${answer.body.toString().trim()}`);
    });
  });
}
