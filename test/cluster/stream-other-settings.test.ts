/**
 * The cluster's stream (`<name>-events`) is made by the first node with the settings contrail
 * needs: its subject, kept for --nats-retention and nothing else limiting it. A stream of that
 * name that exists with other settings — made by hand, or by another application on a shared
 * NATS — was taken as it is, and only its max_age was changed: with another subject, every
 * fence was refused ('jetstream is not enabled', logged as a failed lease check forever, /ready
 * 200, nothing ingested); with max_msgs, batches were dropped long before the retention, so a
 * node away a short while lost events. Found by review. A node must refuse such a stream at
 * start, naming it and what differs.
 *
 * The same for the lease bucket (`KV_<name>-leader`), which was taken as it was and given the
 * lease as its max_age (session 18): another application's stream of that name had its retention
 * cut to the lease (its messages older than 2 s deleted) and, not being a KV bucket, refused every
 * lease (no node ever led: 'jetstream is not enabled' at every check); another's KV bucket of that
 * name lost its entries after the lease.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

const OPTIONS = { replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, nodeId: 'a' };

const cases: Array<{ what: string; name: string; config: Partial<StreamConfig>; refusal: RegExp }> = [
  { what: 'another subject', name: 'othersubject', config: { subjects: ['othersubject.other'] }, refusal: /subjects \["othersubject\.other"\]/ },
  { what: 'a message limit', name: 'msglimit', config: { subjects: ['msglimit.events'], max_msgs: 20 }, refusal: /max_msgs 20/ },
  { what: 'work-queue retention', name: 'workqueue', config: { subjects: ['workqueue.events'], retention: 'workqueue' as StreamConfig['retention'] }, refusal: /retention workqueue/ },
];

/** One nats-server and a connection to it, both gone at the test's end. */
async function natsServer(t: TestContext) {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const nc = await connect({ servers: nats.urls });
  defer(() => nc.close());
  return { defer, nats, nc, jsm: await jetstreamManager(nc) };
}

test('a node refuses a cluster stream that exists with settings it does not make, naming the stream and what differs', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { nats, jsm } = await natsServer(t);

  for (const { what, name, config, refusal } of cases) {
    await jsm.streams.add({ name: `${name}-events`, num_replicas: 1, ...config });
    await assert.rejects(
      openCluster({ ...OPTIONS, servers: nats.urls, name }, pino({ level: 'silent' })),
      (err: Error) => {
        assert.match(err.message, new RegExp(`${name}-events`), `${what}: the stream is named`);
        assert.match(err.message, refusal, `${what}: the setting is named`);
        assert.match(err.message, /--nats-name/, `${what}: the way out is named`);
        return true;
      },
      `${what}: openCluster refuses the stream`,
    );
    const unchanged = await jsm.streams.info(`${name}-events`);
    assert.equal(unchanged.config.max_age, 0, `${what}: the stream is left as it was`);
  }
});

test('a node refuses a lease bucket that exists with settings it does not make, naming it and what differs, and leaves it as it was', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const { defer, nats, nc, jsm } = await natsServer(t);
  await jsm.streams.add({ name: 'KV_plainstream-leader', subjects: ['plainstream.other'], num_replicas: 1 });
  await new Kvm(jetstream(nc)).create('historybucket-leader', { history: 10, replicas: 1 });
  const buckets = [
    { what: 'a stream that is no KV bucket', name: 'plainstream', refusal: /subjects \["plainstream\.other"\]/ },
    { what: 'a KV bucket keeping history', name: 'historybucket', refusal: /history 10/ },
  ];

  for (const { what, name, refusal } of buckets) {
    const joining = openCluster({ ...OPTIONS, servers: nats.urls, name }, pino({ level: 'silent' }));
    joining.then((joined) => defer(() => joined.nc.close()), () => {});
    await assert.rejects(
      joining,
      (err: Error) => {
        assert.match(err.message, new RegExp(`KV_${name}-leader`), `${what}: the bucket's stream is named`);
        assert.match(err.message, refusal, `${what}: the setting is named`);
        assert.match(err.message, /--nats-name/, `${what}: the way out is named`);
        return true;
      },
      `${what}: openCluster refuses the bucket`,
    );
    const unchanged = await jsm.streams.info(`KV_${name}-leader`);
    assert.equal(unchanged.config.max_age, 0, `${what}: the bucket is left as it was`);
  }
});
