/**
 * Issue #13: "a serving node killed and restarted 1 hour of stream later (simulated): it catches
 * up and serves", and the README: "/ready answers 503 `catching up with the cluster event stream`
 * until it has". cluster.test.ts's "node away"
 * restarts a node 2,000 frames later (about a second of the network) and waits for it to settle,
 * so the catch-up itself is never seen. Here the returning node reads NATS through a proxy that
 * hands it the server's bytes at a fixed rate, so catching up a backlog takes seconds: /ready
 * must say so meanwhile, a client can subscribe and is served, and once caught up /ready is 200
 * and the node holds exactly the upstream's ops.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { FakeRelay } from '../support/fake-relay.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { assertSameOps, eventOpId, upstreamOpIds } from '../support/op-ids.ts';
import { stats, Subscription, waitUntil } from '../support/subscribe-client.ts';
import { SyntheticFirehose } from '../support/synthetic.ts';
import { ThrottledProxy } from '../support/throttled-proxy.ts';

test('a node back after a long absence catches up with /ready saying so, serves meanwhile, then is ready and whole', { skip: natsServerMissing(), timeout: 300_000 }, async (t) => {
  // Nodes stop before the data dirs go and NATS stops (see cleanup.ts).
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  // The catch-up lasts the backlog's stream bytes over this rate, whatever the load: 6,000 frames
  // (about 870 KB in the stream) take 7 s, longer than the node takes from its first read of the
  // stream to its first /ready. More frames cost the test's own CPU instead (about 2 ms each:
  // 20,000 overran the timeout at load 20); a slower rate must still bring each message (a
  // batch, about 100 KB here) well within the follower's 6 s stuck-consumer check.
  const proxy = await ThrottledProxy.start(Number(new URL(nats.urls[0]!).port), 128 * 1024);
  defer(() => proxy.close());
  const firehose = new SyntheticFirehose({ seed: 15, accounts: 300 });
  const pushed: Array<{ seq: number; bytes: Uint8Array }> = [];
  const push = (count: number) => {
    for (const frame of firehose.frames(count)) {
      relay.push({ seq: frame.seq, bytes: frame.bytes });
      pushed.push(frame);
    }
  };
  const dirs = ['a', 'b'].map((id) => tempDir(`contrail-away-${id}-`));
  defer(() => dirs.forEach((dir) => dir.remove()));
  const launch = (i: number, natsUrl: string) =>
    ContrailProcess.serve([
      '--upstream', relay.url, '--data-dir', dirs[i]!.path, '--nats', natsUrl, '--nats-replicas', '1',
      '--nats-lease', '2s', '--nats-name', 'away', '--node-id', ['a', 'b'][i]!,
    ]);
  const a = launch(0, nats.urls[0]!);
  defer(() => a.stop());
  await a.waitForLog('this node is the ingest leader');
  let b = launch(1, nats.urls[0]!);
  await b.waitServing();
  await relay.waitForConnections(1);
  const settled = (node: ContrailProcess) =>
    waitUntil(async () => ((await stats(node.port)).upstreamCursor?.seq ?? 0) >= pushed.at(-1)!.seq, `upstream seq ${pushed.at(-1)!.seq}\n${node.tail()}`, 120_000);
  push(200);
  await settled(b);
  b.child.kill('SIGKILL');
  await b.exit;

  // The stream moves on a long way while b is away.
  push(6_000);
  await settled(a);

  b = launch(1, `nats://127.0.0.1:${proxy.port}`);
  defer(() => b.stop());
  await b.waitServing(120_000);
  const readiness: string[] = [];
  const ready = async () => {
    const response = await fetch(`http://127.0.0.1:${b.port}/ready`);
    const body = await response.text();
    readiness.push(`${response.status} ${body}`);
    return response.status === 200;
  };
  const client = await Subscription.open(b.port, 'cursor=1');
  await waitUntil(ready, `node b to be ready\n${b.tail()}`, 120_000);
  const saidCatchingUp = readiness.filter((line) => /^503 .*catching up with the cluster event stream/.test(line)).length;
  t.diagnostic(`/ready answered ${readiness.length} times before 200, ${saidCatchingUp} of them "catching up"`);
  assert.ok(saidCatchingUp > 0, `/ready said it was catching up before it was ready: ${readiness.slice(0, 3).join(' | ')}`);
  await settled(b);
  const { eventCount } = await stats(b.port);
  await client.waitForCount(eventCount, `${eventCount} events from node b`, 60_000);
  await client.close();
  assertSameOps(client.events.map(eventOpId), upstreamOpIds(pushed).map((op) => op.id));
});
