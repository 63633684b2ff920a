/**
 * A node whose follower failed (here its data dir deleted; a foreign buffer stops it alike) cannot
 * lead: its own batches could no longer reach a buffer it serves from. `contrail serve` exits on
 * `failed`, but a program that calls joinCluster and ignores `failed` keeps the node running, so
 * the node itself must give the ingest lease up — or it renews the lease for as long as it runs
 * and no other node can lead — and never compete for it again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { joinCluster } from '../../src/cluster/index.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { idleIngest } from '../support/idle-ingest.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/subscribe-client.ts';

const NAME = 'failed-lease';

test('a node whose follower failed gives the ingest lease up and never takes it again, though its program ignores `failed`', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const logger = pino({ level: 'silent' });
  const join = async (nodeId: string) => {
    const dir = tempDir(`contrail-failed-lease-${nodeId}-`);
    defer(() => dir.remove());
    const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
    defer(() => store.close());
    const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 1_000, name: NAME, nodeId };
    const node = await joinCluster(options, store, dir.path, logger, new Registry(), idleIngest, 'ws://relay.invalid');
    defer(() => node.stop(0));
    return { node, dir };
  };

  const a = await join('a');
  await waitUntil(() => a.node.leading, 'node a, alone, to lead');
  const b = await join('b');
  // Every write of the lease, in order, as NATS holds it.
  const observer = await connect({ servers: nats.urls });
  defer(() => observer.close());
  const watch = await (await new Kvm(jetstream(observer)).open(`${NAME}-leader`)).watch({ key: 'leader' });
  defer(() => watch.stop());
  const holders: string[] = [];
  void (async () => {
    for await (const entry of watch) if (entry.operation === 'PUT') holders.push(entry.string());
  })();

  a.dir.remove();
  await a.node.failed;
  await waitUntil(() => b.node.leading, 'node b to take the lease node a gave up', 30_000);
  assert.equal(a.node.leading, false, 'node a leads no more');

  // b's stop frees the lease while a runs on: a must not take it; c, joining after, does.
  await b.node.stop(0);
  const c = await join('c');
  await waitUntil(() => c.node.leading, 'node c to take the lease node b freed', 30_000);
  await waitUntil(() => holders.at(-1) === 'c', "the watch to see c's lease");
  const afterB = holders.slice(holders.indexOf('b'));
  assert.ok(!afterB.includes('a'), `node a wrote the lease no more once b held it (holders in order: ${holders.join(' ')})`);
});
