/**
 * Asking again for a repo whose backfill failed, on a real gateway per transport (FakeRelay →
 * ingest → LMDB → server, a PLC directory and a PDS as HTTP servers on 127.0.0.1). The README:
 * an options_update with "backfill": true "starts a backfill of every repo in the new
 * wantedDids that this connection has not had backfilled yet", and each backfilled repo ends
 * with a `backfill` message, complete or failed. A repo whose backfill failed (here: the PDS did
 * not have it yet) has not been backfilled, so asking again fetches it again; it must not be a
 * request that nothing answers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startPdsAndPlc } from './support/pds-and-plc.ts';
import { Subscription, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const TINY = 'did:plc:7hptvnhdyeu53xp6rz7e42iy';
const TINY_CAR = readFileSync(new URL('./fixtures/cars/repo-tiny.car', import.meta.url));

/** A PDS that does not have the repo until `hasRepo`, and a PLC directory pointing at it. */
class Network {
  hasRepo = false;
  pdsRequests = 0;
  plcUrl = '';
  stop = () => {};

  async start(): Promise<void> {
    ({ plcUrl: this.plcUrl, stop: this.stop } = await startPdsAndPlc((_req, res) => {
      this.pdsRequests++;
      if (this.hasRepo) {
        res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
        res.end(TINY_CAR);
        return;
      }
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'RepoNotFound', message: `Could not find repo for DID: ${TINY}` }));
    }));
  }
}

const backfillEnds = (sub: Subscription) => sub.events.filter((e) => e.kind === 'backfill' && e.did === TINY);

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`asking again for a failed backfill over ${transport}`, { skip }, () => {
    const network = new Network();
    before(() => network.start());
    after(() => network.stop());

    test('an options_update with "backfill": true for a repo whose backfill failed fetches it again and ends with a backfill message', () =>
      withGateway({ transport, plcUrl: network.plcUrl, backfillCacheTtlMs: 1 }, {}, async ({ gateway }) => {
        network.hasRepo = false;
        const sub = await Subscription.open(gateway.port, `wantedDids=${TINY}&backfill=true`);
        await waitUntil(() => backfillEnds(sub).length === 1, 'the first backfill to fail');
        assert.equal(backfillEnds(sub)[0]!.backfill.reason, 'repo_not_found');

        network.hasRepo = true;
        const requests = network.pdsRequests;
        sub.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: [TINY], backfill: true } }));
        await waitUntil(() => backfillEnds(sub).length === 2, 'a second backfill message (the request is answered)');
        assert.ok(network.pdsRequests > requests, 'the repo was fetched again');
        assert.deepEqual(backfillEnds(sub)[1]!.backfill, { status: 'complete', rev: '3lscuqc52or2x', records: 8 });
      }));
  });
}
