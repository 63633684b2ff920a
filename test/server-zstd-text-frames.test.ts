/**
 * What a compressed (zstd) /subscribe subscriber gets besides events, on a real gateway per
 * transport (a PLC directory and a PDS as HTTP servers on 127.0.0.1). The README: events —
 * backfilled records included — are binary zstd frames; contrail's own messages (backfill status,
 * heartbeats) stay text frames of plain JSON, so a client tells them apart by frame type without
 * decompressing, and a client that asks for neither (as Jetstream's own do not) sees binary only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import { startPdsAndPlc } from './support/pds-and-plc.ts';
import { Subscription, httpGet, waitUntil, withGateway } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const TINY = 'did:plc:7hptvnhdyeu53xp6rz7e42iy';
const TINY_CAR = readFileSync(new URL('./fixtures/cars/repo-tiny.car', import.meta.url));

/** A PDS serving TINY and a PLC directory pointing at it. */
const startNetwork = () =>
  startPdsAndPlc((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
    res.end(TINY_CAR);
  });

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`compressed subscribers over ${transport}`, { skip }, () => {
    let network: Awaited<ReturnType<typeof startNetwork>>;
    before(async () => (network = await startNetwork()));
    after(() => network.stop());

    test('backfilled records are binary zstd frames; the backfill message and heartbeats are text frames of plain JSON', () =>
      withGateway({ transport, plcUrl: network.plcUrl }, {}, async ({ gateway }) => {
        const sub = await Subscription.open(gateway.port, `wantedDids=${TINY}&backfill=true&compress=true&heartbeat=1s`);
        await waitUntil(() => sub.events.some((e) => e.type === 'heartbeat'), 'a heartbeat after the backfill');
        const dictionary = (await httpGet(gateway.port, '/dictionary')).body;
        const decompressor = new Decompressor();
        decompressor.loadDictionary(dictionary);
        const binary = sub.messages.filter((m) => m.binary).map((m) => JSON.parse(decompressor.decompress(m.data).toString('utf8')));
        assert.equal(binary.length, 8, 'the 8 records, compressed like events');
        assert.ok(binary.every((e) => e.kind === 'commit' && e.commit.operation === 'create' && e.backfilled === true));
        const texts = sub.events;
        assert.deepEqual(texts[0], { did: TINY, time_us: texts[0]!.time_us, kind: 'backfill', backfill: { status: 'complete', rev: '3lscuqc52or2x', records: 8 } });
        assert.ok(texts.slice(1).every((e) => e.type === 'heartbeat'));
        assert.equal(sub.messages.findIndex((m) => !m.binary), 8, 'the records come first, then the backfill message');
      }));
  });
}
