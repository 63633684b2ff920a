/**
 * Backfill fetch slots shared between subscribers, on a real gateway per transport (FakeRelay →
 * ingest → LMDB → server; a PLC directory and PDSes as HTTP servers on 127.0.0.1). The limits
 * (--backfill-per-host, --backfill-concurrency) bound what the gateway spends; they must not let
 * one subscriber take every slot. A DID document is written by its owner, so one client can ask
 * for repos on as many slow "PDS hosts" as it likes (here: PDSes on other ports, each a host,
 * that never answer). Another subscriber's backfill from a healthy PDS must still be fetched
 * while those hang, not only after each has used up its timeouts and attempts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Subscription, testDid, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const TINY = 'did:plc:7hptvnhdyeu53xp6rz7e42iy';
const TINY_CAR = readFileSync(new URL('./fixtures/cars/repo-tiny.car', import.meta.url));
const CONCURRENCY = 2;
/** One repo per hanging PDS, more of them than there are slots. */
const HOSTILE = Array.from({ length: CONCURRENCY + 1 }, (_, i) => testDid(`slowpds${i}`));

/** A healthy PDS with TINY, PDSes that never answer (one per hostile repo), and a PLC directory naming them. */
class Network {
  readonly servers: http.Server[] = [];
  readonly pdsOf = new Map<string, string>();
  hangingRequests = 0;
  healthyRequests = 0;
  plcUrl = '';

  async start(): Promise<void> {
    const healthy = await this.#listen((_req, res) => {
      this.healthyRequests++;
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
      res.end(TINY_CAR);
    });
    this.pdsOf.set(TINY, healthy);
    for (const did of HOSTILE) this.pdsOf.set(did, await this.#listen(() => this.hangingRequests++));
    this.plcUrl = await this.#listen((req, res) => {
      const did = decodeURIComponent((req.url ?? '').slice(1));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: did, alsoKnownAs: [], service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: this.pdsOf.get(did) }] }));
    });
  }

  async #listen(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    this.servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  stop(): void {
    for (const server of this.servers) {
      server.closeAllConnections();
      server.close();
    }
  }
}

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`backfill slots over ${transport}`, { skip }, () => {
    const network = new Network();
    before(() => network.start());
    after(() => network.stop());

    test('one subscriber\'s repos on PDSes that hang do not hold back another subscriber\'s backfill', () =>
      withGateway({ transport, plcUrl: network.plcUrl, backfillConcurrency: CONCURRENCY, backfillPerHost: 1, backfillTimeoutMs: 120_000 }, {}, async ({ gateway }) => {
        const hostile = await Subscription.open(gateway.port, `${HOSTILE.map((did) => `wantedDids=${did}`).join('&')}&backfill=true`);
        await waitUntil(() => network.hangingRequests > 0, 'the hostile repos\' fetches to start');
        const victim = await Subscription.open(gateway.port, `wantedDids=${TINY}&backfill=true`);
        await waitUntil(() => victim.events.some((e) => e.kind === 'backfill'), 'the other subscriber\'s backfill to end');
        assert.deepEqual(victim.events.at(-1)!.backfill, { status: 'complete', rev: '3lscuqc52or2x', records: 8 });
        assert.equal(hostile.events.length, 0, 'the hanging fetches were still running');
      }));
  });
}
