/**
 * `--nats-replicas` is how many copies NATS keeps of the cluster's stream and lease bucket. They
 * are made by the first node that starts; an operator who grows from one NATS server to three and
 * restarts the nodes with `--nats-replicas 3` expects both to become R3 (a stream update changes
 * a stream's replicas; the lease bucket is the stream `KV_<name>-leader`). The nodes kept R1
 * without a word: the loss of the one server holding them still lost the stream and stopped
 * ingest. And a count larger than the NATS cluster's servers must be refused with a reason that
 * names the flag, also for a stream that exists: NATS answers 'no suitable peers for placement',
 * which contrail passed on as it was.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JetStreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { openCluster } from '../../src/cluster/nats.ts';
import { cleanup } from '../support/cleanup.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/subscribe-client.ts';
import { loggerKeepingLines } from '../support/upstream-harness.ts';

const OPTIONS = { retentionMs: 3_600_000, leaseMs: 2_000, nodeId: 'a' };

/** Resolves once NATS holds `stream` on `replicas` servers, each copy current, with its messages; how many it has. */
async function copiesCurrent(jsm: JetStreamManager, stream: string, replicas: number): Promise<number> {
  let messages = 0;
  await waitUntil(
    async () => {
      const info = await jsm.streams.info(stream);
      messages = info.state.messages;
      const copies = 1 + (info.cluster?.replicas ?? []).filter((peer) => peer.current && !peer.offline).length;
      return info.cluster?.leader !== undefined && copies === replicas;
    },
    `${replicas} current copies of ${stream}`,
    30_000,
  );
  return messages;
}

test('nodes restarted with a larger --nats-replicas make the stream and the lease bucket that many copies, and log it', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(3);
  defer(() => nats.stop());
  const options = { ...OPTIONS, servers: nats.urls, name: 'grow' };

  const first = await openCluster({ ...options, replicas: 1 }, pino({ level: 'silent' }));
  defer(() => first.nc.close());
  for (let i = 0; i < 5; i++) await first.js.publish(first.subject, new Uint8Array([i]));
  assert.equal((await first.jsm.streams.info('grow-events')).config.num_replicas, 1);
  assert.equal((await first.jsm.streams.info('KV_grow-leader')).config.num_replicas, 1);
  await first.nc.close();

  const { logger, lines } = loggerKeepingLines();
  const grown = await openCluster({ ...options, replicas: 3 }, logger);
  defer(() => grown.nc.close());
  for (const stream of ['grow-events', 'KV_grow-leader']) {
    assert.equal((await grown.jsm.streams.info(stream)).config.num_replicas, 3, `${stream} is now configured R3`);
    const said = lines.find((line) => line.stream === stream && line.from === 1 && line.to === 3);
    assert.ok(said, `a log line says ${stream} went from 1 to 3 copies: ${JSON.stringify(lines)}`);
    assert.match(said.msg, /--nats-replicas/);
  }
  assert.equal(await copiesCurrent(grown.jsm, 'grow-events', 3), 5, 'every server holds the stream\'s messages');
  await copiesCurrent(grown.jsm, 'KV_grow-leader', 3);

  // Another node restarted with the same count finds nothing to change and says nothing of it.
  const { logger: quiet, lines: quietLines } = loggerKeepingLines();
  const again = await openCluster({ ...options, nodeId: 'b', replicas: 3 }, quiet);
  defer(() => again.nc.close());
  assert.deepEqual(quietLines.filter((line) => line.to === 3), [], 'nothing to change, nothing logged');
});

test('a --nats-replicas larger than the NATS cluster is refused with a reason naming the flag, for a new stream and an existing one', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(3);
  defer(() => nats.stop());
  const refusal = (err: Error) => {
    assert.match(err.message, /could not place 5 replicas/);
    assert.match(err.message, /no suitable peers for placement/, 'NATS\'s own reason is kept');
    assert.match(err.message, /--nats-replicas/);
    return true;
  };

  await assert.rejects(openCluster({ ...OPTIONS, servers: nats.urls, name: 'toomany', replicas: 5 }, pino({ level: 'silent' })), refusal, 'a new stream');

  const existing = await openCluster({ ...OPTIONS, servers: nats.urls, name: 'existing', replicas: 3 }, pino({ level: 'silent' }));
  defer(() => existing.nc.close());
  await assert.rejects(openCluster({ ...OPTIONS, servers: nats.urls, name: 'existing', replicas: 5 }, pino({ level: 'silent' })), refusal, 'an existing stream');
  assert.equal((await existing.jsm.streams.info('existing-events')).config.num_replicas, 3, 'the stream is left as it was');
});
