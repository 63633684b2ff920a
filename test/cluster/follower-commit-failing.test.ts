/**
 * Session 17 (left): a follower whose commits keep failing — its disk full — reads the stream again
 * from its applied position every second, and logged `reading the cluster event stream failed` at
 * each attempt: a warning a second for as long as the disk stays full, hours of them. Repeated
 * warnings elsewhere are rate-limited (DropLog): the first, then one line per interval saying how
 * many it stands for. The follower must log so too, and still apply everything once there is room.
 *
 * Real parts: nats-server, a StreamWriter appending as a leader does, a follower on a real buffer
 * on a small tmpfs the test fills (the kernel's ENOSPC through LMDB).
 */
import assert from 'node:assert/strict';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { StreamFollower } from '../../src/cluster/follower.ts';
import { openCluster } from '../../src/cluster/nats.ts';
import { StreamWriter } from '../../src/cluster/stream-writer.ts';
import { EventStore, type Batch } from '../../src/store/index.ts';
import { cleanup } from '../support/cleanup.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';
import { smallFileSystem } from '../support/small-file-system.ts';
import { capturingLogger } from '../support/upstream-harness.ts';

const DID = 'did:plc:fullfullfullfullfullfullf';
const PER_BATCH = 50;
const READ_FAILED = 'reading the cluster event stream failed';

/** PER_BATCH identity events from seq `first` on, each carrying 2 KB of incompressible noise so the disk fills fast. */
function batchFrom(first: number): Batch {
  const entries = Array.from({ length: PER_BATCH }, (_, i) => {
    const seq = first + i;
    const noise = Array.from({ length: 200 }, (_, j) => ((seq * 2654435761 + j * 40503) >>> 0).toString(36).padStart(10, '0')).join('');
    return { timeUs: 1_000_000 + seq, seq, did: DID, kind: 'identity' as const, collection: null, json: Buffer.from(`{"did":"${DID}","time_us":${1_000_000 + seq},"kind":"identity","noise":"${noise}"}`) };
  });
  return { entries, revs: new Map(), cursor: { url: 'ws://relay.invalid', seq: first + PER_BATCH - 1 } };
}

test('a follower whose commits keep failing (a full disk) logs the failure once per interval, with how many lines it stands for, and applies everything once there is room', { skip: natsServerMissing(), timeout: 180_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-follower-full-');
  defer(() => dir.remove());
  const at = join(dir.path, 'disk');
  const disk = smallFileSystem(at, '80m');
  if (!disk) {
    t.skip('cannot mount a tmpfs here (needs root): a follower on a full disk is not tested');
    return;
  }
  defer(() => disk.unmount());
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const logs: Array<{ msg: string; detail?: string; suppressedSinceLastLog?: number }> = [];
  const logger = capturingLogger(logs, 'info');
  const cluster = await openCluster({ servers: nats.urls, replicas: 1, retentionMs: 3_600_000, leaseMs: 2_000, name: 'full', nodeId: 'a' }, logger);
  defer(() => cluster.nc.close());
  const store = new EventStore({ dataDir: join(at, 'data'), hotLogBytes: 0, fsync: false, mapSizeBytes: 64 << 20 });
  defer(() => store.close());
  const follower = new StreamFollower(cluster, store, at, logger);
  await follower.start();
  defer(() => follower.stop());

  const writer = new StreamWriter(cluster.nc, cluster.js, cluster.jsm, cluster.streamName, cluster.subject, 'a', () => {});
  await writer.fence();
  let seq = 1;
  let streamSeq = await writer.append(batchFrom(seq));
  seq += PER_BATCH;
  await follower.waitApplied(streamSeq);

  const filler = join(at, 'filler');
  const { bavail, bsize } = statfsSync(at);
  writeFileSync(filler, Buffer.alloc(bavail * bsize));
  const failures = () => logs.filter((record) => record.msg.startsWith(READ_FAILED));
  // Batches keep coming until one cannot be committed.
  for (let i = 0; i < 200 && failures().length === 0; i++) {
    streamSeq = await writer.append(batchFrom(seq));
    seq += PER_BATCH;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(failures().length > 0, 'a commit failed on the full disk');

  // The follower tries again every second; the next line it writes stands for those it held back.
  await waitUntil(() => failures().length >= 2, 'a second line about the failing reads', 60_000);
  const [first, second] = failures();
  assert.ok((second!.suppressedSinceLastLog ?? 0) >= 3, `the second line stands for the attempts held back since the first (it says ${second!.suppressedSinceLastLog})`);
  assert.equal(first!.suppressedSinceLastLog, 0, 'the first line stands for itself');
  assert.match(String(first!.detail), /space|ENOSPC|MDB_/i, 'the line says why');

  rmSync(filler);
  await waitUntil(() => follower.appliedSeq >= streamSeq, `the follower to apply the stream through seq ${streamSeq} once there is room`, 60_000);
  assert.equal(store.lastSeq, seq - 1, 'every event the stream holds is in the buffer');
});
