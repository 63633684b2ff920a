#!/usr/bin/env node
// `npm run test:e2e`: the end-to-end suite in test/e2e/ (a real PLC + PDS, contrail as a child
// process, real Jetstream clients).
//
// Its dependencies (@atproto/pds and friends, ~300 MB with a compiled better-sqlite3) live in
// test/e2e/'s own package.json and lock so the gateway's own install stays lean; they are
// installed here on first use, and again when the lock changes.
//
// The suite runs in its own process group with a deadline, so a hung run cannot outlive it:
// on timeout or Ctrl-C the whole group (test runner, PDS, contrail children) is killed, and the
// run's temp folder (PDS and contrail data) is removed.
//
//   npm run test:e2e                              both files
//   npm run test:e2e -- test/e2e/clients.test.mjs one file (any node --test flags pass through)
//   E2E_TIMEOUT_S=300 npm run test:e2e            a longer deadline (default 240 s)
//
// (No CONTRAIL_ prefix on these variables: contrail reads every CONTRAIL_* variable as a flag.)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const e2e = join(root, 'test', 'e2e');

function needsInstall() {
  const installed = join(e2e, 'node_modules', '.package-lock.json'); // npm writes it on every install
  if (!existsSync(installed)) return 'test/e2e/node_modules is missing';
  if (statSync(join(e2e, 'package-lock.json')).mtimeMs > statSync(installed).mtimeMs) return 'test/e2e/package-lock.json changed';
  return undefined;
}

const reason = needsInstall();
if (reason) {
  console.log(`test:e2e: ${reason}; running npm ci --prefix test/e2e (a few minutes: it compiles better-sqlite3)`);
  const started = Date.now();
  const install = spawnSync('npm', ['ci', '--prefix', e2e, '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (install.status !== 0) {
    console.error(`test:e2e: npm ci in test/e2e failed (exit ${install.status ?? install.signal})`);
    process.exit(1);
  }
  console.log(`test:e2e: installed in ${Math.round((Date.now() - started) / 1000)} s`);
}

// Test files to run: those named on the command line, else every test/e2e/*.test.mjs.
const args = process.argv.slice(2);
const files = args.some((arg) => !arg.startsWith('-'))
  ? []
  : readdirSync(e2e)
      .filter((name) => name.endsWith('.test.mjs'))
      .sort()
      .map((name) => relative(root, join(e2e, name)));
const timeoutS = Number(process.env.E2E_TIMEOUT_S ?? 240);
const runTmp = mkdtempSync(join(tmpdir(), 'contrail-e2e-run-'));

// One file at a time: each starts its own PDS and contrail, and a 2-core machine runs them
// more predictably in turn. tsx: the suite runs contrail through the tests' TypeScript helper
// (test/support/contrail-process.ts).
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...args, ...files], {
  cwd: root,
  stdio: 'inherit',
  detached: true, // its own process group, so killGroup reaches every descendant
  env: { ...process.env, E2E_TMPDIR: runTmp },
});

const killGroup = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};
const deadline = setTimeout(() => {
  console.error(`test:e2e: no result after ${timeoutS} s; killing the run`);
  killGroup('SIGTERM');
  setTimeout(() => killGroup('SIGKILL'), 5_000).unref();
}, timeoutS * 1000);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => killGroup(signal));

child.on('exit', (code, signal) => {
  clearTimeout(deadline);
  killGroup('SIGKILL'); // anything the run left behind (it should have left nothing)
  rmSync(runTmp, { recursive: true, force: true });
  process.exit(code ?? (signal ? 1 : 0));
});
