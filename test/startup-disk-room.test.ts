/**
 * Issue #10, "Coherent defaults": the defaults must hold 24 hours "on a machine with room for
 * it", or contrail says at start-up how many hours its size limit holds. It does say how many
 * hours `--max-buffer-bytes` holds, but not whether the disk has room for that bound: with the
 * default 40 GB on a disk with less free, the buffer fills the disk long before the size bound
 * trims anything, and from then on every commit fails (ingest paused, retrying) until the age
 * bound frees pages a day later. A start whose size bound is larger than the room the data dir's
 * file system has should say so.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ContrailProcess } from './support/contrail-process.ts';
import { tempDir } from './support/gateway.ts';
import { smallFileSystem } from './support/small-file-system.ts';

test('a --max-buffer-bytes larger than the free space of the data dir\'s disk is warned about at start', { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  const disk = smallFileSystem(join(dir.path, 'disk'), '96m');
  let contrail: ContrailProcess | undefined;
  t.after(async () => {
    try {
      await contrail?.stop(); // before the unmount, which fails while contrail holds the disk
      disk?.unmount();
    } finally {
      dir.remove();
    }
  });
  if (!disk) {
    t.skip('cannot mount a tmpfs here (needs root)');
    return;
  }
  contrail = new ContrailProcess(['serve', '--upstream', 'demo', '--data-dir', join(dir.path, 'disk', 'data'), '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--max-buffer-bytes', '40GB']);
  await contrail.waitForLog((line) => typeof line.msg === 'string' && /holds about/.test(line.msg));
  await new Promise((resolve) => setTimeout(resolve, 500));
  const warned = contrail.logs.find((line) => line.level >= 40 && /free|disk|room|space/i.test(String(line.msg)));
  assert.ok(warned, `a warning that 40 GB does not fit the ~96 MB disk; the start-up said: ${JSON.stringify(contrail.logs.map((line) => line.msg))}`);
});
