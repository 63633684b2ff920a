/**
 * ContrailCluster.start that fails (a node that does not start: here an unknown flag; in session
 * 21, a checkout without dist/) rejects before the test could register the cluster's stop, so
 * what it had started — nats-server, the fake relay, the observer's NATS connection, the nodes —
 * was never stopped: the test file reported its failure, then its process ran on until killed (14
 * minutes, in session 21, holding the machine's shared benchmark lock). A failed start must stop
 * what it started, so that the process ends by itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { PROJECT_ROOT } from '../support/contrail-process.ts';
import { tempDir } from '../support/gateway.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

/** Starts a cluster whose node refuses its flags, and says how the start ended; nothing keeps it running after that. */
const SCRIPT = `
import { ContrailCluster } from './test/support/contrail-cluster.ts';
import { exitOnStopSignals } from './test/support/exit-on-signals.ts';
exitOnStopSignals();
try {
  await ContrailCluster.start({ natsServers: 1, nodeIds: ['a'], leaseMs: 1_000, args: ['--no-such-flag'] });
  console.log('started');
} catch (err) {
  console.log('failed: ' + err.message.split('\\n')[0]);
}
`;

test('a ContrailCluster whose start fails stops what it started: its process ends by itself, leaving no directory', { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  // The child's own temporary directory, where the harness makes its clusters' and nodes'.
  const childTmp = tempDir();
  defer(() => childTmp.remove());
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, TMPDIR: childTmp.path },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Stopped by SIGTERM if it hangs, it kills the nats-server it started on its way out (exitOnStopSignals).
  defer(() => child.kill('SIGTERM'));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));

  await waitUntil(() => stdout.includes('\n'), 'the child to say how the start ended', 90_000);
  assert.match(stdout, /^failed: /, `the start fails (${stderr.trim().split('\n').at(-1)})`);
  await waitUntil(() => child.exitCode !== null, `the child to end by itself once the start failed (it said: ${stdout.trim()})`, 30_000);
  assert.deepEqual(await exited, [0, null]);
  assert.deepEqual(readdirSync(childTmp.path).filter((name) => name.startsWith('contrail-')), [], "the cluster's and the node's directories were removed");
});
