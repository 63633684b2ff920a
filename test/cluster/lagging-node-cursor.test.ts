/**
 * A client whose node goes away resumes on another node with the last time_us it got. That node
 * may be behind the one it left (replication lag): the cursor is then past its buffer's newest
 * event, though not in the future. Here node b falls behind for as long as the test needs (its
 * NATS traffic passes a proxy that holds the server's bytes), a client resumes on it with the
 * newest time_us node a served, and must get the events from that cursor on — exactly once, none
 * before it — once b catches up. Taken for a future cursor, as a single process takes it, b would
 * start the client at its own tip and send the batches it lacked, before the cursor, again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { Feed } from '../support/contrail-cluster.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { FakeRelay } from '../support/fake-relay.ts';
import { tempDir } from '../support/gateway.ts';
import { HoldingProxy } from '../support/holding-proxy.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { stats, Subscription, waitUntil } from '../support/subscribe-client.ts';

/** `contrail serve` as cluster node `id` on a data dir of its own, stopped (then its dir removed) by `defer`. */
function serveNode(defer: (step: () => unknown) => void, id: string, relayUrl: string, natsUrl: string): ContrailProcess {
  const dir = tempDir(`contrail-lag-${id}-`);
  defer(() => dir.remove());
  const node = ContrailProcess.serve(['--upstream', relayUrl, '--data-dir', dir.path, '--nats', natsUrl, '--nats-replicas', '1', '--nats-lease', '2s', '--node-id', id]);
  defer(() => node.stop());
  return node;
}

/** Every event a node serves from its oldest, as the JSON texts a client receives. */
async function allEvents(node: ContrailProcess): Promise<string[]> {
  const { eventCount } = await stats(node.port);
  const all = await Subscription.open(node.port, 'cursor=1');
  await all.waitForCount(eventCount, `${eventCount} events`, 60_000);
  await all.close();
  return all.texts;
}

const timeUs = (text: string): number => JSON.parse(text).time_us;

test('a client resuming on a node that lags the one it left, with the newest time_us it got there, gets every later event exactly once', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  // Steps run newest first, every one: the clients, then the nodes (b's proxy releasing its held
  // bytes before b stops), then the proxy, relay and NATS.
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const proxy = await HoldingProxy.start(nats.servers[0]!.port);
  defer(() => proxy.close());
  const feed = new Feed(relay);
  // a leads (the only node when the lease is first taken); b reads the stream through the proxy.
  const a = serveNode(defer, 'a', relay.url, nats.urls[0]!);
  await a.waitServing();
  await relay.waitForConnections(1, 60_000);
  const b = serveNode(defer, 'b', relay.url, `nats://127.0.0.1:${proxy.port}`);
  defer(() => proxy.release());
  defer(() => Subscription.closeAll());
  await b.waitServing();
  feed.push(100);
  const holdsEverything = async (node: ContrailProcess) => ((await stats(node.port)).upstreamCursor?.seq ?? 0) >= feed.lastSeq;
  for (const node of [a, b]) await waitUntil(() => holdsEverything(node), 'both nodes to hold the first frames', 60_000);

  proxy.hold('server');
  feed.push(100);
  await waitUntil(() => holdsEverything(a), 'node a to hold the frames b has not seen', 60_000);
  const onA = await allEvents(a);
  const cursor = timeUs(onA.at(-1)!);
  const lagging = (await stats(b.port)).eventCount;
  assert.ok(lagging < onA.length, `node b lags node a (${lagging} events against ${onA.length})`);

  const resumed = await Subscription.open(b.port, `cursor=${cursor}`);
  proxy.release();
  feed.push(50);
  await waitUntil(() => holdsEverything(b), 'node b to catch up', 60_000);
  const onB = await allEvents(b);
  const expected = onB.filter((text) => timeUs(text) >= cursor);
  await resumed.waitForCount(expected.length, `${expected.length} events from the cursor on`, 30_000);
  await resumed.roundTrip();
  assert.deepEqual(resumed.texts, expected, 'from the cursor (inclusive) on, once each, nothing before it');
});
