/**
 * A repo dropped from wantedDids and asked for again at once, on a real gateway per transport
 * (FakeRelay → ingest → LMDB → server, a PLC directory and a PDS as HTTP servers on 127.0.0.1).
 * Dropping it cancels its fetch; asking again starts a new one, which must be the one that ends
 * the repo's backfill: the cancelled fetch's end must not be taken for the new fetch's, even when
 * both updates are read in one turn (one TCP read), before the cancellation has been told.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startPdsAndPlc } from './support/pds-and-plc.ts';
import { Subscription, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const TINY = 'did:plc:7hptvnhdyeu53xp6rz7e42iy';
const OTHER = 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa';
const TINY_CAR = readFileSync(new URL('./fixtures/cars/repo-tiny.car', import.meta.url));

/** A PDS that holds its first getRepo unanswered (a fetch in progress) and answers the later ones. */
class Network {
  requests = 0;
  plcUrl = '';
  stop = () => {};

  async start(): Promise<void> {
    ({ plcUrl: this.plcUrl, stop: this.stop } = await startPdsAndPlc((_req, res) => {
      if (++this.requests === 1) return;
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
      res.end(TINY_CAR);
    }));
  }
}

const backfillEnds = (sub: Subscription) => sub.events.filter((e) => e.kind === 'backfill' && e.did === TINY);
const update = (payload: object) => JSON.stringify({ type: 'options_update', payload });

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`a repo dropped and asked for again over ${transport}`, { skip }, () => {
    const network = new Network();
    before(() => network.start());
    after(() => network.stop());

    test('dropped and asked for again in one read: the new fetch ends its backfill, complete, not the cancelled one as failed', () =>
      withGateway({ transport, plcUrl: network.plcUrl }, {}, async ({ gateway }) => {
        const sub = await Subscription.open(gateway.port, `wantedDids=${TINY}&backfill=true`);
        await waitUntil(() => network.requests === 1, 'the first fetch to reach the PDS');

        // Both updates in one write, so the server reads them in one turn.
        const socket = (sub.ws as unknown as { _socket: Socket })._socket;
        socket.cork();
        sub.send(update({ wantedDids: [OTHER] }));
        sub.send(update({ wantedDids: [TINY], backfill: true }));
        socket.uncork();

        await waitUntil(() => backfillEnds(sub).length > 0 && network.requests === 2, 'the repo\'s backfill message, after a second fetch');
        assert.deepEqual(backfillEnds(sub)[0]!.backfill, { status: 'complete', rev: '3lscuqc52or2x', records: 8 });
      }));
  });
}
