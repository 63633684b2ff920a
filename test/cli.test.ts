/**
 * The command line as operators meet it. The README's flag table must list exactly the flags the CLI
 * takes, with the right environment variable and default, and the help must list them too.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SERVE_OPTIONS, flagsFromEnvironment } from '../src/config.ts';
import { runContrail } from './support/contrail-process.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function flagTable(): Map<string, { env: string; defaultText: string }> {
  const start = readme.indexOf('<!-- flags:');
  assert.ok(start >= 0, 'README has the flags table marker');
  const rows = readme.slice(start).split('\n').slice(1);
  const table = new Map<string, { env: string; defaultText: string }>();
  for (const row of rows.slice(2)) {
    if (!row.startsWith('|')) break;
    const [flag = '', env = '', defaultText = ''] = row.split('|').slice(1, 4).map((cell) => cell.trim());
    table.set(flag.replace(/`/g, '').replace(/^--/, ''), { env: env.replace(/`/g, ''), defaultText });
  }
  return table;
}

test('the README lists exactly the flags of contrail serve, each with its environment variable', () => {
  const table = flagTable();
  assert.deepEqual([...table.keys()].sort(), Object.keys(SERVE_OPTIONS).sort());
  for (const [flag, { env }] of table) assert.equal(env, `CONTRAIL_${flag.toUpperCase().replace(/-/g, '_')}`, flag);
});

test("the README's defaults are the CLI's defaults", () => {
  for (const [flag, { defaultText }] of flagTable()) {
    const option = SERVE_OPTIONS[flag as keyof typeof SERVE_OPTIONS] as { default: unknown; defaultDescription?: string };
    if (option.defaultDescription) {
      assert.ok(option.defaultDescription.includes(defaultText.replace(/`/g, '').replace(/^bundled /, '')), `${flag}: ${defaultText}`);
    } else {
      assert.equal(defaultText, `\`${String(option.default)}\``, flag);
    }
  }
});

test('contrail --help lists every flag', () => {
  const { status, stdout: help } = runContrail(['--help']);
  assert.equal(status, 0);
  for (const flag of Object.keys(SERVE_OPTIONS)) assert.match(help, new RegExp(`--${flag}\\b`), flag);
  assert.match(help, /CONTRAIL_/);
});

test('a bad flag value exits 2 with one line naming what is wrong', () => {
  for (const args of [['--retention', 'soon'], ['--port', '70000'], ['--no-such-flag'], ['--transport', 'carrier-pigeon']]) {
    const { status, stderr } = runContrail(args);
    assert.equal(status, 2, args.join(' '));
    assert.match(stderr.split('\n')[0]!, /^contrail: .+/, args.join(' '));
  }
});

test('flags come from CONTRAIL_<FLAG> variables; unrelated CONTRAIL_* variables are ignored', () => {
  const run = (env: Record<string, string>) => runContrail(['serve'], { env, timeoutMs: 20_000 });
  // A bad value from the environment is reported like a bad flag: proof the variable was read.
  const bad = run({ CONTRAIL_SERVICE_HOST: '10.0.0.7', CONTRAIL_SERVICE_PORT: 'tcp://10.0.0.7:6008', CONTRAIL_RETENTION: 'forever' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /"forever" is not a duration/);
  assert.doesNotMatch(bad.stderr, /Unknown argument/);
});

test('a bad value from the environment exits 2 with a line naming the variable; CONTRAIL_FSYNC=maybe is one', () => {
  const run = (env: Record<string, string>) => runContrail(['serve', '--log-level', 'silent'], { env, timeoutMs: 20_000 });
  for (const [name, value, why] of [
    ['CONTRAIL_FSYNC', 'maybe', /is not a boolean/],
    ['CONTRAIL_PORT', '60o8', /is not a port/],
    ['CONTRAIL_TRANSPORT', 'carrier-pigeon', /is not one of auto, uws, ws/],
    ['CONTRAIL_VERIFY_RESYNC_RETRY', 'soon', /is not a duration/],
  ] as const) {
    const result = run({ [name]: value });
    assert.equal(result.status, 2, `${name}=${value}`);
    assert.match(result.stderr.split('\n')[0]!, new RegExp(`^contrail: ${name}: "${value}"`));
    assert.match(result.stderr, why);
  }
});

test('booleans from the environment: 1/true/yes/on and 0/false/no/off/empty, any case', () => {
  const fsync = (value: string) => flagsFromEnvironment(SERVE_OPTIONS, [], { CONTRAIL_FSYNC: value }).fsync;
  for (const value of ['1', 'true', 'TRUE', 'yes', 'on']) assert.equal(fsync(value), true, value);
  for (const value of ['0', 'false', 'False', 'no', 'off', '']) assert.equal(fsync(value), false, value);
});

test('a flag on the command line wins over its variable, which is then not checked', () => {
  assert.deepEqual(flagsFromEnvironment(SERVE_OPTIONS, ['--fsync'], { CONTRAIL_FSYNC: 'maybe' }), {});
  assert.deepEqual(flagsFromEnvironment(SERVE_OPTIONS, ['--port=7000'], { CONTRAIL_PORT: 'x' }), {});
});

test("Kubernetes service links (CONTRAIL_PORT=tcp://ip:port) are ignored with a warning naming the variable; other bad ports are errors", () => {
  const warnings: string[] = [];
  const env = { CONTRAIL_PORT: 'tcp://10.0.0.1:6008', CONTRAIL_METRICS_PORT: 'tcp://10.0.0.2:6009', CONTRAIL_RETENTION: '7d' };
  assert.deepEqual(flagsFromEnvironment(SERVE_OPTIONS, [], env, (message) => warnings.push(message)), { retention: '7d' });
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /^ignoring CONTRAIL_PORT=tcp:\/\/10\.0\.0\.1:6008: a Kubernetes service link/);
  assert.throws(() => flagsFromEnvironment(SERVE_OPTIONS, [], { CONTRAIL_PORT: 'http://10.0.0.1:6008' }, () => {}), /^Error: CONTRAIL_PORT: "http:\/\/10\.0\.0\.1:6008" is not a port/);
});

test('inspect reads CONTRAIL_DATA_DIR and ignores the serve-only variables', () => {
  const result = runContrail(['inspect'], { env: { CONTRAIL_DATA_DIR: '/nonexistent/contrail-buffer', CONTRAIL_PORT: 'tcp://10.0.0.7:6008' } });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /no event buffer in \/nonexistent\/contrail-buffer/);
});

test('inspect on a file that is not an LMDB buffer says so and exits 1, instead of crashing', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'contrail-corrupt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'data.mdb'), Buffer.alloc(8192, 0x5a));
  const result = runContrail(['inspect', '--data-dir', dir]);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /is not an LMDB database/);
});

test('every file the README names exists, and every test it quotes is in the file it names', () => {
  const root = new URL('../', import.meta.url);
  const named = [...readme.matchAll(/(?<![\w./-])((?:src|test|bench|scripts|dictionaries)\/[\w./-]*\w\.[\w-]*\w)/g)].map((m) => m[1] ?? '');
  assert.ok(named.length > 10, 'the README names files');
  for (const path of new Set(named)) assert.ok(existsSync(new URL(path, root)), `README names ${path}, which does not exist`);

  // `test/x.test.ts` ("a test's title…", "another") — "…" stands for words left out; numbers may be
  // interpolated in the source (`${KILLS}`).
  for (const [, path = '', quoted = ''] of readme.matchAll(/`(test\/[\w./-]+\.test\.ts)`\s*\(([^)]*)\)/g)) {
    const source = readFileSync(new URL(path, root), 'utf8').replace(/\\'/g, "'");
    for (const title of [...quoted.matchAll(/"([^"]+)"/g)].map((m) => (m[1] ?? '').replace(/\s+/g, ' '))) {
      for (const piece of title.split('…').map((p) => p.trim()).filter(Boolean)) {
        const pattern = new RegExp(piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\d+/g, '(?:\\d+|\\$\\{[^}]+\\})'));
        assert.match(source, pattern, `README quotes "${title}" from ${path}`);
      }
    }
  }
});
