/**
 * Start-up as an operator meets it, with real `contrail` processes: the folder it runs from, the
 * data dir and port it claims, and what a failed start leaves behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess, PROJECT_ROOT } from './support/contrail-process.ts';
import { V1_DICTIONARY, v1DictionarySkipReason } from './support/fixtures.ts';
import { smallFileSystem } from './support/small-file-system.ts';
import { tempDir } from './support/gateway.ts';
import { transportsUnderTest } from './support/transports.ts';

/** An upstream nobody listens on: the gateway keeps retrying it, which these tests do not mind. */
const NO_UPSTREAM = 'ws://127.0.0.1:9';

function serveArgs(dataDir: string, ...extra: string[]): string[] {
  return ['serve', '--upstream', NO_UPSTREAM, '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', ...extra];
}

test('contrail starts from a folder whose path has a space (and loads its bundled dictionary)', { timeout: 240_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.remove());
  const root = join(dir.path, 'my projects', 'contrail');
  mkdirSync(root, { recursive: true });
  for (const part of ['dist', 'dictionaries', 'package.json']) cpSync(join(PROJECT_ROOT, part), join(root, part), { recursive: true });
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'));
  const contrail = new ContrailProcess(serveArgs(join(dir.path, 'data')), { root });
  t.after(() => contrail.stop());
  const serving = await contrail.waitForLog((e) => typeof e.msg === 'string' && e.msg.startsWith('serving /subscribe on '));
  assert.equal(serving.dictionary, join(root, 'dictionaries', 'contrail-v1.zstd-dict'));
  assert.deepEqual(await contrail.stop(), { code: 0, signal: null });
});

const UNCLEAN = (e: { msg?: string }) => /did not stop cleanly|MACHINE CRASH/.test(e.msg ?? '');

test("a second contrail on the same data dir is refused with a message naming the first one's pid; the first runs on", { timeout: 240_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.remove());
  const first = new ContrailProcess(serveArgs(dir.path));
  t.after(() => first.stop());
  const port = await first.waitServing();
  const second = new ContrailProcess(serveArgs(dir.path));
  t.after(() => second.stop());
  assert.equal((await second.exit).code, 1);
  assert.match(second.stderr.join('\n'), new RegExp(`^contrail: data dir .+ is in use by another contrail \\(pid ${first.child.pid}, running since `));
  assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  assert.deepEqual(await first.stop(), { code: 0, signal: null });
  assert.ok(!first.logs.some(UNCLEAN));

  // The lock goes with its holder however it ends: after a SIGKILL the next start takes it.
  const killed = new ContrailProcess(serveArgs(dir.path));
  await killed.waitServing();
  killed.child.kill('SIGKILL');
  await killed.exit;
  const next = new ContrailProcess(serveArgs(dir.path));
  t.after(() => next.stop());
  await next.waitServing();
  assert.ok(next.logs.some((e) => /did not stop cleanly/.test(e.msg ?? '')), 'the SIGKILL is reported as what it was');
});

for (const { transport, skip } of await transportsUnderTest()) {
  test(`over ${transport}: a second contrail on a port in use is refused, and its failed start leaves no crash marker`, { skip, timeout: 240_000 }, async (t) => {
    const dirA = tempDir();
    const dirB = tempDir();
    t.after(() => {
      dirA.remove();
      dirB.remove();
    });
    const first = new ContrailProcess(serveArgs(dirA.path, '--transport', transport));
    t.after(() => first.stop());
    const port = await first.waitServing();
    const second = new ContrailProcess(serveArgs(dirB.path, '--transport', transport).map((arg, i, args) => (args[i - 1] === '--port' ? String(port) : arg)));
    t.after(() => second.stop());
    assert.equal((await second.exit).code, 1);
    assert.match(second.stderr.join('\n'), new RegExp(`^contrail: 127\\.0\\.0\\.1:${port} is already in use .*--port`));
    assert.equal(existsSync(join(dirB.path, 'contrail-run.json')), false, 'no run marker left behind');

    const third = new ContrailProcess(serveArgs(dirB.path, '--transport', transport));
    t.after(() => third.stop());
    await third.waitServing();
    assert.ok(!third.logs.some(UNCLEAN), 'the failed start is not taken for a crash');
    assert.deepEqual(await third.stop(), { code: 0, signal: null });
  });
}

test('a data dir that is a file, or is under one, is refused with a message saying so, not an EEXIST from mkdir', { timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir();
  defer(() => dir.remove());
  const file = join(dir.path, 'buffer');
  writeFileSync(file, 'a file where the data dir should be');
  for (const dataDir of [file, join(file, 'data')]) {
    const contrail = new ContrailProcess(serveArgs(dataDir));
    defer(() => contrail.stop());
    assert.equal((await contrail.exit).code, 1, dataDir);
    assert.match(contrail.stderr[0] ?? '', new RegExp(`^contrail: data dir ${dataDir} is not a directory \\(${file} is a file\\)`), dataDir);
  }
});

test('a start on a full disk fails with a message saying so, not a SIGBUS', { timeout: 240_000 }, async (t) => {
  const dir = tempDir();
  const disk = smallFileSystem(join(dir.path, 'disk'), '1m');
  t.after(() => {
    disk?.unmount();
    dir.remove();
  });
  if (!disk) {
    t.skip('cannot mount a tmpfs here (needs root): the full-disk start is not tested');
    return;
  }
  // Leave 4 KiB: enough for LMDB to create its file, not to write its first pages into the map
  // (before the check: "Bus error", exit 135).
  writeFileSync(join(dir.path, 'disk', 'filler'), Buffer.alloc(1024 * 1024 - 4096));
  const contrail = new ContrailProcess(serveArgs(join(dir.path, 'disk', 'data')));
  t.after(() => contrail.stop());
  assert.deepEqual(await contrail.exit, { code: 1, signal: null });
  assert.match(contrail.stderr.join('\n'), /^contrail: only \d+ KiB free on the file system of .+; contrail needs at least 64 MiB free to open its buffer/);
});

test('a truncated zstd dictionary is refused at start, not advertised under the ID of the whole one', { timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir();
  defer(() => dir.remove());
  const dictionaries = [join(PROJECT_ROOT, 'dictionaries', 'contrail-v1.zstd-dict'), ...(v1DictionarySkipReason() ? [] : [V1_DICTIONARY])];
  for (const whole of dictionaries) {
    // Its header (magic and ID) is intact: the ID alone says nothing of the rest.
    const truncated = join(dir.path, 'truncated.zstd-dict');
    writeFileSync(truncated, readFileSync(whole).subarray(0, 200));
    const contrail = new ContrailProcess(serveArgs(join(dir.path, 'data'), '--zstd-dictionary', truncated));
    defer(() => contrail.stop());
    // A start that serves is the defect: say so at once rather than wait for an exit that does not come.
    const served = contrail.waitServing().then(
      () => 'served with it',
      () => 'exited',
    );
    assert.equal(await Promise.race([served, contrail.exit.then(() => 'exited')]), 'exited', whole);
    assert.equal((await contrail.exit).code, 1, whole);
    assert.match(contrail.stderr[0] ?? '', /^contrail: .*truncated\.zstd-dict.* dictionary ID \d+ .*not its content/, whole);
  }
});

test('a zstd dictionary given as a pipe is read once, and contrail serves with it', { timeout: 240_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir();
  defer(() => dir.remove());
  // A named pipe, as `--zstd-dictionary <(curl …)` or /dev/stdin give one: its bytes come once.
  // The gateway read and checked the dictionary, then the server opened the file again: a named
  // pipe's second open waits for a writer that never comes (an unnamed one's reads nothing:
  // 'not a zstd dictionary').
  const pipe = join(dir.path, 'dictionary.pipe');
  execFileSync('mkfifo', [pipe]);
  const contrail = new ContrailProcess(serveArgs(join(dir.path, 'data'), '--zstd-dictionary', pipe));
  defer(() => contrail.stop());
  const writer = await open(pipe, 'w'); // once contrail opens it to read
  await writer.writeFile(readFileSync(join(PROJECT_ROOT, 'dictionaries', 'contrail-v1.zstd-dict')));
  await writer.close();
  await contrail.waitServing(60_000);
  const serving = contrail.logs.find((record) => record.msg.startsWith('serving /subscribe on '));
  assert.equal(serving?.zstdDictionaryId, 1668247156, "frames are made with the piped dictionary (the bundled one's ID)");
});
