/**
 * A fresh explorer (nothing shown yet) asks /stats for the newest event stored, to start its
 * stream after it. /stats answers 503 BufferUnreadable while LMDB refuses a page of the block
 * directory (damaged on disk under a running contrail); the page took that refusal for stats, its
 * missing newestTimeUs for none, and asked for a replay of the whole buffer from its start, which
 * met the same page and ended with BufferUnreadable. It must say /stats is unavailable, and why,
 * and start live. In headless Chromium against a real gateway; one transport is enough.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeBufferWithDirectory } from './support/block-stream.ts';
import { browserUnavailable, launchBrowser, openPage, waitForExplorer } from './support/browser.ts';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesInPlace } from './support/lmdb-pages.ts';
import { httpGet } from './support/subscribe-client.ts';

test('a fresh explorer whose /stats answers 503 says stats are unavailable, and why, and starts live', { skip: browserUnavailable(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-explorer-stats-unavailable-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const { pageSize, directoryKey } = await writeBufferWithDirectory(dataDir, 3);
  const gateway = await startTestGateway('ws://127.0.0.1:9', dataDir, { transport: 'ws', replayWorkers: 0 });
  defer(() => gateway.stop());
  assert.ok(breakLeafPagesInPlace(dataDir, pageSize, directoryKey) > 0, 'a directory page is broken');
  assert.equal((await httpGet(gateway.port, '/stats')).status, 503, '/stats refuses');
  const browser = await launchBrowser();
  defer(() => browser.close());

  const page = await openPage(browser);
  await page.goto(`http://127.0.0.1:${gateway.port}/`);
  const view = await waitForExplorer(page, (v) => v.status === 'live' || /BufferUnreadable/.test(v.status), 'its stream open, or ended');
  assert.equal(view.status, 'live', `it starts live, not a replay from the buffer's start: ${view.status}`);
  assert.equal(gateway.server.hub.size, 1, 'one stream, open');
  assert.match(await page.$eval('#position', (node) => (node as HTMLElement).innerText), /\/stats unavailable.*BufferUnreadable/, 'it says /stats is unavailable, and why');
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('contrail-explorer') ?? '{}').lastTimeUs ?? 0), 0, 'no start of its own saved');
});
