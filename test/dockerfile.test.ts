/**
 * The Docker image, checked without a Docker engine (none runs here or in CI): the Dockerfile
 * passes dockerfile-utils' validator (the one behind VS Code's Docker support; hadolint is in
 * neither npm nor Debian), has the shape the README promises (a build stage with the compilers,
 * a run stage without them, non-root, /data volume, health check), sends only what it copies as
 * build context, and its HEALTHCHECK command really answers for a running gateway.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { validate } from 'dockerfile-utils';
import type { Gateway } from '../src/gateway.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dockerfile = readFileSync(`${root}/Dockerfile`, 'utf8');
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .filter((line) => line.trim() && !line.startsWith('#'))
  .map((line) => {
    const [keyword = '', ...rest] = line.trim().split(/\s+/);
    return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
  });
const stages = instructions.reduce<Array<typeof instructions>>((all, instruction) => {
  if (instruction.keyword === 'FROM') all.push([]);
  all.at(-1)!.push(instruction);
  return all;
}, []);

test('the Dockerfile passes dockerfile-utils\' validator', () => {
  assert.deepEqual(validate(dockerfile).map((d) => `line ${d.range.start.line + 1}: ${d.message}`), []);
});

test('multi-stage: compilers only in the build stage; the image runs as a non-root user with a /data volume and a health check', () => {
  assert.equal(stages.length, 2, 'a build stage and a run stage');
  const [build, run] = stages;
  assert.ok(build && run);
  assert.match(build[0]!.args, / AS build$/i);
  assert.ok(build.some((i) => i.keyword === 'RUN' && /g\+\+/.test(i.args)), 'the build stage installs the compilers');
  assert.ok(!run.some((i) => i.keyword === 'RUN' && /apt-get|npm/.test(i.args)), 'the run stage installs nothing');
  assert.ok(run.some((i) => i.keyword === 'COPY' && i.args.startsWith('--from=build')), 'the run stage copies the build');
  assert.equal(run.find((i) => i.keyword === 'USER')?.args, 'node');
  assert.equal(run.find((i) => i.keyword === 'VOLUME')?.args, '/data');
  assert.match(run.find((i) => i.keyword === 'ENV')?.args ?? '', /CONTRAIL_DATA_DIR=\/data/);
  assert.ok(run.some((i) => i.keyword === 'HEALTHCHECK'), 'a HEALTHCHECK');
});

test('.dockerignore sends what the COPY lines need and nothing else (no ./data, no node_modules)', () => {
  const ignore = readFileSync(`${root}/.dockerignore`, 'utf8')
    .split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'));
  assert.equal(ignore[0], '*', 'an allow-list');
  const allowed = ignore.slice(1).map((line) => line.replace(/^!/, ''));
  const copied = instructions
    .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  assert.deepEqual([...new Set(copied)].sort(), [...allowed].sort(), 'every copied path is allowed, every allowed path copied');
  for (const path of copied) assert.ok(existsSync(`${root}/${path}`), `${path} exists`);
});

let relay: FakeRelay;
let gateway: Gateway;
const dir = tempDir();
before(async () => {
  relay = await FakeRelay.start();
  gateway = await startTestGateway(relay.url, dir.path);
});
after(async () => {
  await gateway.stop();
  await relay.stop();
  dir.remove();
});

test('the HEALTHCHECK command exits 0 against a running gateway on CONTRAIL_PORT, 1 when nothing answers', async () => {
  const healthcheck = instructions.find((i) => i.keyword === 'HEALTHCHECK')!.args;
  const [program, ...args] = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as [string, ...string[]];
  const run = promisify(execFile);
  const healthy = await run(program === 'node' ? process.execPath : program, args, {
    env: { ...process.env, CONTRAIL_PORT: String(gateway.port) },
  });
  assert.equal(healthy.stderr, '');
  const unhealthy = await run(process.execPath, args, { env: { ...process.env, CONTRAIL_PORT: '1' } }).then(
    () => 0,
    (err: { code: number }) => err.code,
  );
  assert.equal(unhealthy, 1);
});
