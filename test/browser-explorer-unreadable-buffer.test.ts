/**
 * An explorer whose stream ends because LMDB refuses a page of the buffer its replay reads
 * (BufferUnreadable: nothing says which events are lost, so no cursor past them) must not ask for
 * them again for ever, as EventSource does by itself: each reconnect met the same page. It stops,
 * says why, and offers to go on from the newest events. In headless Chromium, against a real
 * gateway serving a buffer whose per-DID index page of the watched repo is broken here; the page
 * is the same on both transports, so one is enough.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { didHash } from '../src/store/did-keys.ts';
import { REPO_IN_EVERY_BLOCK, blockStream, writeBuffer } from './support/block-stream.ts';
import { browserUnavailable, launchBrowser, openPage, waitForExplorer } from './support/browser.ts';
import { cleanup } from './support/cleanup.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { breakLeafPagesOf } from './support/lmdb-pages.ts';
import { waitUntil } from './support/poll.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';

test('the explorer stops at a buffer page LMDB refuses, says why, and goes on from the newest events when asked', { skip: browserUnavailable(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-explorer-unreadable-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const events = blockStream(3);
  await writeBuffer(dataDir, events);
  const raw = openLmdb({ path: dataDir, maxDbs: 16 });
  const { pageSize } = raw.getStats() as { pageSize: number };
  await raw.close();
  assert.ok(breakLeafPagesOf(dataDir, pageSize, didHash(REPO_IN_EVERY_BLOCK)) > 0, 'the repo index page is broken');
  const gateway = await startTestGateway(NO_UPSTREAM, dataDir, { transport: 'ws' });
  defer(() => gateway.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  // The page watched the repo from the buffer's start (a reload resumes there).
  const page = await openPage(browser);
  await page.evaluateOnNewDocument(`localStorage.setItem('contrail-explorer', ${JSON.stringify(JSON.stringify({ collections: '', dids: REPO_IN_EVERY_BLOCK, lastTimeUs: events[0]!.timeUs }))});`);
  await page.goto(`http://127.0.0.1:${gateway.port}/`);
  const view = await waitForExplorer(page, (v) => /BufferUnreadable/.test(v.status), 'the unreadable buffer');
  assert.doesNotMatch(view.status, /reconnecting/, `it does not ask for the same events again: ${view.status}`);
  await waitUntil(() => gateway.server.hub.size === 0, 'the page to let its stream go');
  const skip = await page.$('#skip');
  assert.ok(skip && (await skip.isVisible()), 'a button to go on');
  assert.match(await skip.evaluate((button) => (button as HTMLElement).innerText), /newest/, 'from the newest events: no cursor says where the lost ones end');

  await skip.click();
  await waitForExplorer(page, (v) => v.status === 'live', 'a live stream from the newest events');
  assert.equal(gateway.server.hub.size, 1, 'one stream, open');
  assert.equal(await page.$eval('#skip', (button) => (button as HTMLElement).hidden), true);
});
