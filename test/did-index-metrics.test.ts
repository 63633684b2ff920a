/**
 * What an operator reads about the per-DID index: `contrail_store_did_index_state` (0 in use,
 * 1 bypassed, 2 being rebuilt) and `contrail_store_did_index_inconsistencies_total`. In the
 * process (each state in turn, exactly) and through a gateway's /metrics after a replay met a
 * corrupt index entry: the entry counted, the index rebuilt in the background, and back in use.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { Registry } from 'prom-client';
import type { Entry } from '../src/events/index.ts';
import { didHash } from '../src/store/did-keys.ts';
import { EventStore, registerBufferGauges } from '../src/store/index.ts';
import { samples } from './support/exposition.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { httpGet, Subscription, waitUntil } from './support/subscribe-client.ts';

const STATE = 'contrail_store_did_index_state';
const FOUND = 'contrail_store_did_index_inconsistencies_total';

const dids = Array.from({ length: 300 }, (_, i) => `did:plc:${String(i).padStart(24, 'm')}`);
/** Three thousand events an hour old (inside retention), in blocks of 1,024 once sealed. */
function makeEvents(): Entry[] {
  const first = Date.now() * 1000 - 3_600_000_000;
  return Array.from({ length: 3_000 }, (_, i) => {
    const timeUs = first + i * 7;
    const did = dids[(i * 7919) % dids.length]!;
    const json = `{"did":"${did}","time_us":${timeUs},"kind":"commit","commit":{"rev":"3l${i}","operation":"create","collection":"app.bsky.feed.like","rkey":"r${i}","record":{},"cid":"bafy${i}"}}`;
    return { timeUs, did, kind: 'commit', collection: 'app.bsky.feed.like', json: Buffer.from(json) };
  });
}

test('the per-DID index metrics: 0 in use, 2 while rebuilt after an inconsistency (counted), 0 again; 1 bypassed where nothing may rebuild it', async (t) => {
  const dir = tempDir('contrail-index-metrics-');
  t.after(() => dir.remove());
  const registry = new Registry();
  let store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  await store.commit({ entries: makeEvents(), revs: new Map() });
  registerBufferGauges(registry, store);
  const scrape = async () => samples(await registry.metrics());
  let metrics = await scrape();
  assert.equal(metrics.get(STATE), 0);
  assert.equal(metrics.get(FOUND), 0);
  store.reportDidIndexInconsistent('test: an inconsistency');
  // The rebuild's steps run on later turns of the event loop; a scrape collects at once.
  metrics = await scrape();
  assert.equal(metrics.get(STATE), 2, 'being rebuilt');
  assert.equal(metrics.get(FOUND), 1);
  store.reportDidIndexInconsistent('test: the same, met again while it is rebuilt');
  assert.equal((await scrape()).get(FOUND), 1, 'counted once: the index is bypassed already');
  await waitUntil(() => store.didIndex.state === 'ok', 'the index rebuilt');
  metrics = await scrape();
  assert.equal(metrics.get(STATE), 0, 'in use again');
  assert.equal(metrics.get(FOUND), 1);
  await store.close();

  // A read-only store (contrail inspect) cannot rebuild it: bypassed.
  store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, readOnly: true });
  t.after(() => store.close());
  const readOnly = new Registry();
  registerBufferGauges(readOnly, store);
  store.reportDidIndexInconsistent('test: an inconsistency');
  assert.equal(samples(await readOnly.metrics()).get(STATE), 1);
  assert.equal(samples(await readOnly.metrics()).get(FOUND), 1);
});

test('/metrics after a replay met a corrupt per-DID index entry: the inconsistency counted, the index rebuilt in the background and in use again', async (t) => {
  const dir = tempDir('contrail-index-metrics-gateway-');
  t.after(() => dir.remove());
  const events = makeEvents();
  const target = events[1_234]!.did;
  const expected = events.filter((e) => e.did === target).map((e) => e.json.toString());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false });
  await store.commit({ entries: events, revs: new Map() });
  await store.close();
  // The target's posting of events[1_234] names events[1_235], another repo's event.
  const raw = openLmdb({ path: dir.path, maxDbs: 16 });
  const byDid = raw.openDB<Buffer, Buffer>({ name: 'byDid', keyEncoding: 'binary', encoding: 'binary', dupSort: true, dupFixed: true } as never);
  const key = didHash(target);
  const value = [...byDid.getValues(key)].find((v) => v.readUInt32BE(4) === events[1_234]!.timeUs % 2 ** 32)!;
  const wrong = Buffer.from(value);
  wrong.writeUInt32BE(events[1_235]!.timeUs % 2 ** 32, 4);
  byDid.removeSync(key, value);
  byDid.putSync(key, wrong);
  await raw.close();

  const relay = await FakeRelay.start();
  // A small hot log: the replay reads the blocks, through the index.
  const gateway = await startTestGateway(relay.url, dir.path, { hotCacheBytes: 64 * 1024 });
  t.after(async () => {
    await Subscription.closeAll();
    await gateway.stop();
    await relay.stop();
  });
  const metrics = async () => samples((await httpGet(gateway.metricsPort, '/metrics')).body.toString());
  const before = await metrics();
  assert.equal(before.get(STATE), 0);
  assert.equal(before.get(FOUND), 0);

  const client = await Subscription.open(gateway.port, `wantedDids=${target}&cursor=${events[0]!.timeUs}`);
  await client.waitForCount(expected.length, `the DID's ${expected.length} events`);
  assert.deepEqual(client.texts, expected, 'the replay is exact');
  const after = await metrics();
  assert.equal(after.get(FOUND), 1, 'the inconsistency is counted');
  // 2 while it is rebuilt; a buffer this small may be rebuilt before the scrape.
  assert.ok(after.get(STATE) === 2 || after.get(STATE) === 0, `state ${after.get(STATE)}`);
  await waitUntil(async () => (await metrics()).get(STATE) === 0, 'the index rebuilt (state 0)');

  const again = await Subscription.open(gateway.port, `wantedDids=${target}&cursor=${events[0]!.timeUs}`);
  await again.waitForCount(expected.length, `the DID's ${expected.length} events again`);
  assert.deepEqual(again.texts, expected);
  assert.equal((await metrics()).get(FOUND), 1, 'the rebuilt index is consistent');
});
