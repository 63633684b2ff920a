/**
 * A single process whose data dir is deleted under it (an `rm -rf`, a volume unmounted) meets no
 * error: LMDB goes on writing into its unlinked file, and the node serves from a buffer the next
 * start cannot find. It must stop through `failed` (`contrail serve` then exits 1, saying it),
 * naming the data dir — also when the dir is made again at once at the same path.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { waitUntil } from './support/subscribe-client.ts';

const removals = {
  deleted: (path: string) => rmSync(path, { recursive: true }),
  'deleted and made again': (path: string) => {
    rmSync(path, { recursive: true });
    mkdirSync(path);
  },
};

for (const [what, remove] of Object.entries(removals)) {
  test(`a gateway whose data dir is ${what} under it stops through \`failed\`, naming the data dir`, { timeout: 60_000 }, async (t) => {
    const defer = cleanup(t);
    const dir = tempDir('contrail-dir-deleted-');
    defer(() => dir.remove());
    const gateway = await startTestGateway('ws://127.0.0.1:1', dir.path);
    defer(() => gateway.stop(0));
    let failure: Error | undefined;
    void gateway.failed.then((err) => (failure = err));

    remove(dir.path);
    await waitUntil(() => failure !== undefined, 'gateway.failed to resolve');
    assert.match(failure!.message, new RegExp(`the data dir ${dir.path} is gone`));
  });
}
