/**
 * A `--nats` value the NATS client cannot take is a flag error like any other: `contrail serve`
 * exits 2 with one line naming --nats and the value (its credentials as ***), before it opens
 * anything. Until session 19 only URLs without the nats:// or tls:// form were refused so: one
 * that has the form but does not parse (a port past 65535, a stray character in the host) got
 * through, the buffer was opened (its data dir made, its LMDB lock taken, its checks run), the
 * server and metrics endpoint listened, and only joining the cluster refused it, with exit 1.
 * URLs that carry different credentials were likewise refused only there; and a URL of another
 * scheme was shown as given, password and all.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanup } from '../support/cleanup.ts';
import { ContrailProcess } from '../support/contrail-process.ts';
import { tempDir } from '../support/gateway.ts';

const PASSWORD = 's3cret-pw';

const CASES: Array<{ nats: string; says: RegExp }> = [
  { nats: `nats://alice:${PASSWORD}@127.0.0.1:99999`, says: /nats:\/\/\*\*\*@127\.0\.0\.1:99999" is not a NATS server URL/ },
  { nats: `nats://alice:${PASSWORD}@nats^1:4222`, says: /nats:\/\/\*\*\*@nats\^1:4222" is not a NATS server URL/ },
  { nats: `http://alice:${PASSWORD}@127.0.0.1:4222`, says: /http:\/\/\*\*\*@127\.0\.0\.1:4222" is not a NATS server URL/ },
  { nats: `nats://alice:${PASSWORD}@127.0.0.1:4222,nats://bob:other@127.0.0.1:4223`, says: /carry different credentials/ },
];

test('an unparseable --nats exits 2 naming the flag and the value (credentials as ***) before the buffer is opened', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-nats-flag-');
  defer(() => dir.remove());
  const wrong: string[] = [];
  for (const [i, { nats, says }] of CASES.entries()) {
    for (const given of ['flag', 'environment'] as const) {
      const dataDir = join(dir.path, `${i}-${given}`);
      const contrail =
        given === 'flag'
          ? ContrailProcess.serve(['--upstream', 'demo', '--data-dir', dataDir, '--nats', nats])
          : ContrailProcess.serve(['--upstream', 'demo', '--data-dir', dataDir], { env: { CONTRAIL_NATS: nats } });
      defer(() => contrail.stop());
      const { code } = await contrail.exit;
      const line = contrail.stderr[0] ?? '';
      const problems = [
        code !== 2 && `exit ${code}`,
        !/^contrail: /.test(line) && 'no one-line usage error',
        !/--nats|CONTRAIL_NATS/.test(line) && 'the flag is not named',
        !says.test(line) && `not ${says}`,
        contrail.stderr.some((text) => text.includes(PASSWORD)) && 'the password is shown',
        existsSync(dataDir) && 'the data dir was made (the buffer was opened)',
        contrail.logs.length > 0 && `it logged ${contrail.logs.length} lines (it started)`,
      ].filter(Boolean);
      if (problems.length > 0) wrong.push(`${given} ${nats.replaceAll(PASSWORD, '<pw>')}: ${problems.join(', ')}; stderr ${JSON.stringify(contrail.stderr.join('\n').replaceAll(PASSWORD, '<pw>'))}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('a --nats-name NATS cannot name a stream and a KV bucket with exits 2 naming the flag and the value before the buffer is opened', async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-nats-name-flag-');
  defer(() => dir.remove());
  const wrong: string[] = [];
  // Names <name>-events (a stream: no '.', '*', '>' or whitespace) and <name>-leader (a KV bucket: letters, digits, _ and - only).
  for (const [i, name] of ['a.b', 'a b', '*', 'x>', 'é'].entries()) {
    const dataDir = join(dir.path, String(i));
    // Nothing listens at the URL: a start the parser let through fails there (exit 1).
    const contrail = ContrailProcess.serve(['--upstream', 'demo', '--data-dir', dataDir, '--nats', 'nats://127.0.0.1:1', '--nats-name', name]);
    defer(() => contrail.stop());
    const { code } = await contrail.exit;
    const line = contrail.stderr[0] ?? '';
    const problems = [
      code !== 2 && `exit ${code}`,
      !line.startsWith('contrail: ') && 'no one-line usage error',
      !line.includes('--nats-name') && 'the flag is not named',
      !line.includes(JSON.stringify(name)) && 'the value is not named',
      existsSync(dataDir) && 'the data dir was made (the buffer was opened)',
    ].filter(Boolean);
    if (problems.length > 0) wrong.push(`${JSON.stringify(name)}: ${problems.join(', ')}; stderr ${JSON.stringify(contrail.stderr.join('\n'))}`);
  }
  assert.deepEqual(wrong, []);
});
