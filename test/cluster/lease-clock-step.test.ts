/**
 * The leader's waits are measured in elapsed time, which a step of the wall clock must not
 * stretch: NTP stepping back a node's clock that was ahead (the skew clock-skew.test.ts runs
 * with, corrected) is ordinary. A new leader whose buffer does not move toward its marker for a
 * whole lease gives the lease up (lease-kept-while-catching-up.test.ts); until session 19 it
 * measured that with Date.now(), so a clock stepped back an hour while it waited kept it renewing
 * the lease for an hour with its buffer standing still, and no node ingested. The node here runs
 * under libfaketime, its wall clock stepped back while it waits.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { clockSteppedEnv, libfaketimeMissing } from '../support/clock-behind.ts';
import { tempDir } from '../support/gateway.ts';
import { NatsCluster, natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

const LEASE_MS = 4_000;
const GAVE_UP = "this node's buffer did not move toward its term's marker";

test('a new leader whose buffer stands still gives the lease up after a lease, also when its wall clock is stepped back meanwhile', { skip: natsServerMissing() || libfaketimeMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const dir = tempDir('contrail-lease-clock-step-');
  defer(() => dir.remove());
  const offsetFile = join(dir.path, 'offset');
  writeFileSync(offsetFile, '+0');
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/stuck-catch-up-leader.ts', nats.urls[0]!, String(LEASE_MS)], {
    env: { ...process.env, ...clockSteppedEnv(offsetFile) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  defer(async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push((JSON.parse(line) as { msg: string }).msg));

  await waitUntil(() => lines.includes('waiting for the marker'), 'the node to take the lease and wait for its buffer', 60_000);
  writeFileSync(offsetFile, '-3600s');
  // A lease and a renewal period after the wait began, with room for a loaded machine; the code before the fix waited an hour.
  await waitUntil(() => lines.some((line) => line.startsWith(GAVE_UP)), 'the node to give the lease up', 6 * LEASE_MS).catch(() => {});
  assert.ok(lines.some((line) => line.startsWith(GAVE_UP)), `the node gave the lease up; it said: ${JSON.stringify(lines)}`);
});
