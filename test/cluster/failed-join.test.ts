/**
 * joinCluster connects to NATS (openCluster) and then starts the node's follower, which refuses a
 * buffer this stream did not write (foreign-buffer.test.ts). A start that failed after the
 * connection was made left it open: the NATS client reconnects for good, so a process that ran
 * the gateway in-process and caught the error never exited, and nats-server kept serving a node
 * that was not there. Found by review. Every failed join closes what it opened.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { joinCluster } from '../../src/cluster/index.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

const DID = 'did:plc:failedjoinfailedjoinfaile';

test('a join that fails after connecting to NATS closes its connection', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-failed-join-');
  defer(() => dir.remove());
  // A single process's buffer, holding events of its own numbering: the follower refuses it.
  const store = new EventStore({ dataDir: join(dir.path, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const timeUs = 1_700_000_000_000_000;
  await store.commitAssigned({ entries: [{ timeUs, seq: 1, did: DID, kind: 'identity', collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${timeUs},"kind":"identity"}`) }], revs: new Map() });

  const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'failedjoin', nodeId: 'failing' };
  const startIngest = () => assert.fail('a node that did not join never ingests');
  await assert.rejects(joinCluster(options, store, join(dir.path, 'data'), pino({ level: 'silent' }), new Registry(), startIngest, 'demo'), /not read from this cluster's stream/);

  // The test has no connection of its own: nats-server must come to serve none.
  let clients: string[] = [];
  await waitUntil(async () => (clients = await nats.clientNames()).length === 0, 'the failed node\'s NATS connection to close', 20_000).catch((err: Error) => {
    throw new Error(`${err.message}; nats-server still serves ${JSON.stringify(clients)}`);
  });
});
