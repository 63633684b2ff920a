/**
 * `--upstream demo`: the built-in synthetic network. The same seed gives the same messages;
 * its mix looks like the live network's; a gateway started on it serves events within seconds.
 * And `--ingest-collections`, the operator's filter, on a gateway fed by the demo.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCollectionList, parseUpstream } from '../src/config.ts';
import { DemoNetwork, type UpstreamMessage } from '../src/upstream/index.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { HttpStream } from './support/http-stream.ts';
import { httpGet, waitUntil } from './support/subscribe-client.ts';

const FIXED_CLOCK = () => new Date(Date.UTC(2026, 11, 1, 12));

function messages(seed: number, firstSeq: number, count: number): UpstreamMessage[] {
  const network = new DemoNetwork(seed, firstSeq, FIXED_CLOCK);
  return Array.from({ length: count }, () => network.next());
}

test('the same seed gives the same messages, byte for byte; another seed or a resumed start gives others', () => {
  const a = messages(7, 1, 500);
  assert.deepEqual(messages(7, 1, 500), a);
  assert.notDeepEqual(messages(8, 1, 500), a);
  const resumed = messages(7, 501, 10);
  assert.deepEqual(resumed.map((m) => ('seq' in m ? m.seq : 0)), Array.from({ length: 10 }, (_, i) => 501 + i), 'a resumed demo continues the seqs');
});

test("the demo's mix looks like the live network's: mostly likes, then posts, reposts and follows; identity and account events too", () => {
  const tally = new Map<string, number>();
  const all = messages(1, 1, 20_000);
  for (const message of all) {
    const keys = message.type === 'commit' ? message.ops.map((op) => `${op.action} ${op.collection}`) : [message.type];
    for (const key of keys) tally.set(key, (tally.get(key) ?? 0) + 1);
  }
  const share = (key: string) => (tally.get(key) ?? 0) / all.length;
  assert.ok(share('create app.bsky.feed.like') > 0.4 && share('create app.bsky.feed.like') < 0.5, JSON.stringify([...tally]));
  assert.ok(share('create app.bsky.feed.post') > 0.2);
  for (const key of ['create app.bsky.feed.repost', 'create app.bsky.graph.follow', 'update app.bsky.actor.profile', 'identity', 'account']) {
    assert.ok(share(key) > 0.002, `${key}: ${share(key)}`);
  }
  assert.ok([...tally.keys()].some((key) => key.startsWith('delete ')));
});

test('a gateway on --upstream demo serves events within seconds, offline', async () => {
  assert.equal(parseUpstream('demo'), 'demo');
  assert.equal(parseUpstream('demo:42'), 'demo:42');
  const dir = tempDir();
  const gateway = await startTestGateway('demo', dir.path);
  try {
    const stream = await HttpStream.open(gateway.port, '/stream.ndjson', 'cursor=0&limit=50');
    await stream.ended;
    assert.equal(stream.events.length, 50);
    const kinds = new Set(stream.events.map((e) => JSON.parse(e).kind));
    assert.ok(kinds.has('commit'));
  } finally {
    await gateway.stop();
    dir.remove();
  }
});

test('--ingest-collections keeps only the chosen collections (identity and account events always), and counts the ops it drops', async () => {
  assert.deepEqual(parseCollectionList('app.bsky.feed.post, app.bsky.graph.*'), ['app.bsky.feed.post', 'app.bsky.graph.*']);
  assert.throws(() => parseCollectionList('app.bsky.feed.post,not a collection'), /"not a collection" is neither an NSID nor a prefix/);
  const dir = tempDir();
  // The demo at 100 messages a second: in 20 s, about 100 identity and account events.
  const gateway = await startTestGateway('demo:3', dir.path, { ingestCollections: ['app.bsky.feed.post', 'app.bsky.graph.*'] });
  try {
    const stream = await HttpStream.open(gateway.port, '/stream.ndjson', 'cursor=0&limit=400');
    await stream.ended;
    const events = stream.events.map((e) => JSON.parse(e));
    const collections = new Set(events.filter((e) => e.kind === 'commit').map((e) => e.commit.collection));
    assert.ok(collections.has('app.bsky.feed.post') && collections.has('app.bsky.graph.follow'), [...collections].join());
    for (const collection of collections) assert.ok(collection === 'app.bsky.feed.post' || collection.startsWith('app.bsky.graph.'), collection);
    const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
    const filtered = Number(/^contrail_ingest_filtered_ops_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(filtered > events.length / 2, `likes, reposts and the rest were counted as filtered (${filtered})`);
    const other = await HttpStream.open(gateway.port, '/stream.ndjson', 'cursor=0&limit=2000');
    await waitUntil(() => other.events.some((e) => /"kind":"(identity|account)"/.test(e)), 'an identity or account event, kept whatever the filter', 60_000);
    other.close();
  } finally {
    await gateway.stop();
    dir.remove();
  }
});
