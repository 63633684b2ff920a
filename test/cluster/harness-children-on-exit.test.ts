/**
 * A benchmark or test process that fails, or that is stopped by SIGTERM or SIGINT once it called
 * exitOnStopSignals (bench/cluster.ts does), ends every nats-server (NatsCluster) and contrail
 * (ContrailProcess) it started, and removes the clusters' directories. bench/cluster.ts left them
 * all running when it was killed (node dies of those signals without running an exit handler),
 * and its nats-servers when it failed (only contrail's children were killed on exit).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { PROJECT_ROOT } from '../support/contrail-process.ts';
import { tempDir } from '../support/gateway.ts';
import { natsServerMissing } from '../support/nats-cluster.ts';
import { waitUntil } from '../support/poll.ts';

/** Starts one nats-server and one contrail, says their pids, then waits to be stopped, or (`fail`) fails when its stdin ends. */
const SCRIPT = `
import { ContrailProcess } from './test/support/contrail-process.ts';
import { exitOnStopSignals } from './test/support/exit-on-signals.ts';
import { NatsCluster } from './test/support/nats-cluster.ts';
exitOnStopSignals();
const [dataDir, end] = process.argv.slice(1);
const nats = await NatsCluster.start(1);
const contrail = ContrailProcess.serve(['--upstream', 'ws://127.0.0.1:9/', '--data-dir', dataDir]);
await contrail.waitServing(60_000);
console.log(JSON.stringify({ nats: nats.servers[0].process.pid, contrail: contrail.child.pid }));
process.stdin.once('end', () => {
  if (end === 'fail') throw new Error('a failure after starting them');
});
process.stdin.resume();
`;

/** Whether a process runs (a zombie, exited but not yet reaped by whoever inherited it, does not). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
  } catch {
    return false;
  }
}

for (const [end, status] of [
  ['SIGTERM', 143],
  ['SIGINT', 130],
  ['fail', 1],
] as const) {
  test(`a process ended by ${end === 'fail' ? 'a failure' : end} leaves no nats-server, contrail or cluster directory behind`, { skip: natsServerMissing(), timeout: 120_000 }, async (t) => {
    const defer = cleanup(t);
    const dataDir = tempDir();
    defer(() => dataDir.remove());
    // The child's own temporary directory, where NatsCluster makes its cluster's.
    const childTmp = tempDir();
    defer(() => childTmp.remove());
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, dataDir.path, end], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, TMPDIR: childTmp.path },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
    let pids: { nats: number; contrail: number } | undefined;
    defer(() => {
      child.kill('SIGKILL');
      for (const pid of pids ? [pids.nats, pids.contrail] : []) if (running(pid)) process.kill(pid, 'SIGKILL');
    });
    await waitUntil(() => lines.length > 0 || child.exitCode !== null, 'the child to start nats-server and contrail', 90_000);
    assert.ok(lines.length > 0, `the child started both: ${stderr}`);
    pids = JSON.parse(lines[0]!) as { nats: number; contrail: number };
    assert.ok(running(pids.nats) && running(pids.contrail), 'both run while the child does');
    const clusterDirs = () => readdirSync(childTmp.path).filter((name) => name.startsWith('contrail-nats-'));
    assert.equal(clusterDirs().length, 1, "the cluster's directory is there while it runs");

    if (end === 'fail') child.stdin!.end();
    else child.kill(end);
    const [code] = await exited;
    assert.equal(code, status, `the child's exit status (${stderr.trim().split('\n').at(-1)})`);
    const { nats, contrail } = pids;
    await waitUntil(() => !running(nats) && !running(contrail), 'nats-server and contrail to be gone', 10_000).catch(() => {});
    assert.deepEqual({ nats: running(nats), contrail: running(contrail) }, { nats: false, contrail: false }, 'nothing the child started runs on');
    assert.deepEqual(clusterDirs(), [], "the cluster's directory was removed");
  });
}
