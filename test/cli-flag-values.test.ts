/**
 * Flag values as an operator gives them to dist/cli.js, on the command line or as CONTRAIL_*: a
 * string flag needs its value, once, and not empty (but `--trust-proxy` alone is one proxy and an
 * empty `--ingest-collections` all collections), and `--upstream demo` does not go with --verify.
 * Each case here once started: yargs gave a flag left without its value its default (`--verify`
 * alone ran unverified, `--trust-proxy` alone trusted no proxy), a flag given twice the list of
 * both (a boolean its last value), and an empty host let listen serve every address.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import binding from 'zstd-napi/binding.js';
import { DEFAULT_DICTIONARY, environmentVariable } from '../src/config.ts';
import { cleanup } from './support/cleanup.ts';
import { ContrailProcess } from './support/contrail-process.ts';
import { Subscription, stats, upgradeRequest, waitUntil } from './support/subscribe-client.ts';

test('a flag without its value, or given twice, exits 2 with a line naming it instead of starting with its default or a list', async (t) => {
  const defer = cleanup(t);
  const dir = mkdtempSync(join(tmpdir(), 'contrail-flag-values-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  // A data dir that is a file: a start the parser let through fails there (exit 1), so none runs on.
  const notADir = join(dir, 'file');
  writeFileSync(notADir, 'not a data dir');
  const cases: Array<{ args: string[]; names: RegExp }> = [
    { args: ['--verify'], names: /verify/ },
    { args: ['--retention'], names: /retention/ },
    { args: ['--zstd-dictionary'], names: /zstd-dictionary/ },
    { args: ['--max-buffer-bytes', '--fsync'], names: /max-buffer-bytes/ },
    // Read as the short flags -5 and -h (help, exit 0) when the flag did not take it as its value.
    { args: ['--retention', '-5h'], names: /"-5h" is not a duration/ },
    { args: ['--verify', 'full', '--verify', 'off'], names: /--verify is given more than once/ },
    { args: ['--data-dir', notADir], names: /--data-dir is given more than once/ },
    { args: ['--upstream', 'demo:3'], names: /--upstream is given more than once/ },
    { args: ['--port', '7000'], names: /--port is given more than once/ },
    // yargs keeps a boolean's last value, however it was given.
    { args: ['--fsync', '--no-fsync'], names: /--fsync is given more than once/ },
    { args: ['--backfill', 'false', '--backfill=true'], names: /--backfill is given more than once/ },
    // Waits are capped at 1 h, so a longer one acted as 1 h without a word.
    { args: ['--verify-resync-retry', '2h'], names: /--verify-resync-retry.*"2h" is longer than the 1 h cap/ },
  ];
  const wrong: string[] = [];
  for (const { args, names } of cases) {
    // The default command, as `npm start -- <flags>` runs it: yargs reads the flags before it knows them.
    const contrail = new ContrailProcess(['--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--upstream', 'demo', '--data-dir', notADir, ...args]);
    defer(() => contrail.stop());
    const { code } = await contrail.exit;
    const line = contrail.stderr[0] ?? '';
    if (code !== 2 || !/^contrail: /.test(line) || !names.test(line)) wrong.push(`${args.join(' ')}: exit ${code}, ${JSON.stringify(line)}`);
  }
  assert.deepEqual(wrong, []);
});

test('--trust-proxy alone trusts one proxy, as the README says: connections are counted by the address it appended', async (t) => {
  const defer = cleanup(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'contrail-trust-proxy-'));
  defer(() => rmSync(dataDir, { recursive: true, force: true }));
  const contrail = ContrailProcess.serve(['--upstream', 'demo', '--data-dir', dataDir, '--max-connections-per-ip', '1', '--trust-proxy']);
  defer(() => contrail.stop());
  const port = await contrail.waitServing();
  const viaProxy = (address: string) => ({ headers: { 'x-forwarded-for': address } });
  const first = await Subscription.open(port, '', viaProxy('203.0.113.1'));
  defer(() => first.close());
  const second = await upgradeRequest(port, '/subscribe', { 'x-forwarded-for': '203.0.113.2' });
  assert.equal(second.status, 101, `another client behind the proxy has its own slot: ${second.body.toString()}`);
  const again = await upgradeRequest(port, '/subscribe', { 'x-forwarded-for': '203.0.113.1' });
  assert.equal(again.status, 429, 'the first client has used its one slot');
});

test('an empty address, path or name, on the command line or from CONTRAIL_*, exits 2 naming it instead of listening on every address', async (t) => {
  const defer = cleanup(t);
  const dir = mkdtempSync(join(tmpdir(), 'contrail-flag-empty-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  // As above: a start the parser let through fails at its data dir, before it listens anywhere.
  const notADir = join(dir, 'file');
  writeFileSync(notADir, 'not a data dir');
  // An empty --metrics-host served /metrics on every address (net's listen takes '' for none);
  // an empty --host made uWS serve /subscribe on every address, on a port of the OS's choosing.
  const cases: Array<{ args?: string[]; env?: Record<string, string>; names: RegExp }> = [
    { args: ['--metrics-host', ''], names: /--metrics-host is empty/ },
    { args: ['--host', ''], names: /--host is empty/ },
    { env: { CONTRAIL_METRICS_HOST: '' }, names: /CONTRAIL_METRICS_HOST: .*empty/ },
    { env: { CONTRAIL_HOST: '' }, names: /CONTRAIL_HOST: .*empty/ },
    { env: { CONTRAIL_ZSTD_DICTIONARY: '' }, names: /CONTRAIL_ZSTD_DICTIONARY: .*empty/ },
    { env: { CONTRAIL_TRUST_PROXY: '' }, names: /CONTRAIL_TRUST_PROXY: .*empty/ },
  ];
  const wrong: string[] = [];
  for (const { args = [], env = {}, names } of cases) {
    const defaults = ['--port', '0', '--metrics-port', '0', '--upstream', 'demo', '--data-dir', notADir];
    const untested = ['host', 'metrics-host'].filter((flag) => !args.includes(`--${flag}`) && !(environmentVariable(flag) in env));
    const loopback = untested.flatMap((flag) => [`--${flag}`, '127.0.0.1']);
    const contrail = new ContrailProcess([...defaults, ...loopback, ...args], { env });
    defer(() => contrail.stop());
    const { code } = await contrail.exit;
    const line = contrail.stderr[0] ?? '';
    if (code !== 2 || !names.test(line)) wrong.push(`${args.join(' ') || JSON.stringify(env)}: exit ${code}, ${JSON.stringify(line)}`);
  }
  assert.deepEqual(wrong, []);
});

test('--upstream demo with --verify, which the README rules out (its commits are unsigned), exits 2 naming both instead of starting', async (t) => {
  const defer = cleanup(t);
  const dir = mkdtempSync(join(tmpdir(), 'contrail-demo-verify-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  // As above: a start the parser let through fails at its data dir. Started, every demo repo
  // failed as unknown_key (the directory was asked for the demo's made-up DIDs), went out of
  // sync and logged two lines of its own, and nothing was emitted.
  const notADir = join(dir, 'file');
  writeFileSync(notADir, 'not a data dir');
  const wrong: string[] = [];
  for (const [upstream, verify, fromEnv] of [['demo', 'signatures', false], ['demo:7', 'full', false], ['demo', 'full', true]] as const) {
    const flags = ['--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--data-dir', notADir];
    const contrail = fromEnv
      ? new ContrailProcess(flags, { env: { CONTRAIL_UPSTREAM: upstream, CONTRAIL_VERIFY: verify } })
      : new ContrailProcess([...flags, '--upstream', upstream, '--verify', verify]);
    defer(() => contrail.stop());
    const { code } = await contrail.exit;
    const line = contrail.stderr[0] ?? '';
    if (code !== 2 || !/--upstream demo.*--verify/.test(line)) wrong.push(`${upstream} ${verify}${fromEnv ? ' (environment)' : ''}: exit ${code}, ${JSON.stringify(line)}`);
  }
  assert.deepEqual(wrong, []);
});

test('--zstd-replay-level takes a zstd level: a value that is not one exits 2 naming it; CONTRAIL_ZSTD_REPLAY_LEVEL=-5 makes replayed frames at level -5', async (t) => {
  const defer = cleanup(t);
  const dir = mkdtempSync(join(tmpdir(), 'contrail-replay-level-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const notADir = join(dir, 'file');
  writeFileSync(notADir, 'not a data dir');
  const cases: Array<{ args?: string[]; env?: Record<string, string>; names: RegExp }> = [
    { args: ['--zstd-replay-level', 'fast'], names: /--zstd-replay-level.*"fast" is not a zstd level/ },
    { args: ['--zstd-replay-level', '23'], names: /--zstd-replay-level.*"23" is not a zstd level \(-\d+ to 22\)/ },
    { args: ['--zstd-replay-level', '1.5'], names: /--zstd-replay-level.*"1.5" is not a zstd level/ },
    { env: { CONTRAIL_ZSTD_REPLAY_LEVEL: '0x3' }, names: /CONTRAIL_ZSTD_REPLAY_LEVEL.*"0x3" is not a zstd level/ },
  ];
  const wrong: string[] = [];
  for (const { args = [], env = {}, names } of cases) {
    const contrail = new ContrailProcess(['--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--upstream', 'demo', '--data-dir', notADir, ...args], { env });
    defer(() => contrail.stop());
    const { code } = await contrail.exit;
    const line = contrail.stderr[0] ?? '';
    if (code !== 2 || !names.test(line)) wrong.push(`${args.join(' ') || JSON.stringify(env)}: exit ${code}, ${JSON.stringify(line)}`);
  }
  assert.deepEqual(wrong, []);

  const contrail = ContrailProcess.serve(['--upstream', 'demo', '--data-dir', join(dir, 'data')], { env: { CONTRAIL_ZSTD_REPLAY_LEVEL: '-5' } });
  defer(() => contrail.stop());
  const port = await contrail.waitServing();
  await waitUntil(async () => (await stats(port)).eventCount > 0, 'an event stored');
  // The oldest event was stored before any compressed client came: its frame is made for this replay.
  const plain = await Subscription.open(port, 'cursor=0');
  defer(() => plain.close());
  const compressed = await Subscription.open(port, 'cursor=0&compress=true');
  defer(() => compressed.close());
  await plain.waitForCount(1);
  await compressed.waitForCount(1);
  const context = new binding.CCtx();
  context.setParameter(binding.CParameter.compressionLevel, -5);
  context.setParameter(binding.CParameter.contentSizeFlag, 1);
  context.setParameter(binding.CParameter.checksumFlag, 0);
  context.loadDictionary(readFileSync(DEFAULT_DICTIONARY));
  const json = Buffer.from(plain.texts[0]!);
  const expected = Buffer.alloc(binding.compressBound(json.length));
  assert.ok(compressed.messages[0]!.data.equals(expected.subarray(0, context.compress2(expected, json))), "the first replayed frame is zstd's at level -5");
});
