/**
 * A cluster node whose data dir is deleted under it (an operator's `rm -rf`, a volume unmounted)
 * can no longer save where it is in the stream (cluster-position.json), nor keep its buffer where
 * the next start would find it: LMDB goes on writing into its unlinked file. The node must stop
 * through `failed`, with a reason naming the data dir (`contrail serve` then exits 1, saying it),
 * never on an uncaught exception from the position save. Whichever notices first — that save, or
 * the data dir's watch (data-dir-watch.ts), both once a second — stops it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { joinCluster } from '../../src/cluster/index.ts';
import { EventStore } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { idleIngest } from '../support/idle-ingest.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';

test('a cluster node whose data dir is deleted stops through `failed`, naming the data dir', { skip: natsServerMissing(), timeout: 60_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-dir-deleted-');
  defer(() => dir.remove());
  const store = new EventStore({ dataDir: dir.path, hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const logger = pino({ level: 'silent' });
  const options = { servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'dir-deleted', nodeId: 'a' };
  const node = await joinCluster(options, store, dir.path, logger, new Registry(), idleIngest, 'ws://relay.invalid');
  defer(() => node.stop(0));

  dir.remove();
  const err = await node.failed;
  assert.match(err.message, new RegExp(`the data dir ${dir.path} is gone`));
});

test('contrail serve whose data dir is deleted exits 1, saying which data dir is gone, and nothing uncaught', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-dir-deleted-serve-');
  defer(() => dir.remove());
  const contrail = ContrailProcess.serve(['--upstream', 'ws://127.0.0.1:1', '--data-dir', dir.path, '--nats', nats.urls[0]!, '--nats-replicas', '1', '--node-id', 'a']);
  defer(() => contrail.stop());
  // Joined: its position is saved and it leads (no relay to read, which changes nothing here).
  await contrail.waitForLog('this node is the ingest leader');

  dir.remove();
  const status = await contrail.exit;
  assert.equal(status.code, 1, `contrail exits 1:\n${contrail.tail()}`);
  const fatal = contrail.logs.find((record) => record.level === 60);
  assert.equal(fatal?.msg, 'contrail cannot go on', `stopped through \`failed\`:\n${contrail.tail()}`);
  assert.match(String(fatal.err), new RegExp(`the data dir ${dir.path} is gone`));
  assert.match(contrail.stderr.join('\n'), new RegExp(`^contrail: the data dir ${dir.path} is gone`, 'm'));
  assert.doesNotMatch(contrail.stderr.join('\n'), /ENOENT[^)]*$|^\s+at /m, 'no uncaught error or stack on stderr');
});
