/**
 * An explorer that resumes into a block of the buffer damaged on disk is told which events are
 * lost (BufferDamaged), stops asking for them, and offers to go on past them: EventSource alone
 * would reconnect at its last event, meet the same block and end again, for ever. Going on shows
 * every event after the block, once. In headless Chromium, against a real gateway on 127.0.0.1
 * serving a buffer damaged here; the page is the same on both transports, so one is enough.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { BLOCK, POST, blockStream, writeBuffer } from './support/block-stream.ts';
import { browserUnavailable, launchBrowser, openPage, waitForExplorer } from './support/browser.ts';
import { cleanup } from './support/cleanup.ts';
import { damagePartition } from './support/damaged-block.ts';
import { startTestGateway, tempDir } from './support/gateway.ts';
import { waitUntil } from './support/poll.ts';

const NO_UPSTREAM = 'ws://127.0.0.1:9';

test('the explorer stops at a damaged block, says which events are lost, and goes on past them when asked', { skip: browserUnavailable(), timeout: 120_000 }, async (t) => {
  const defer = cleanup(t);
  const dir = tempDir('contrail-explorer-damaged-');
  defer(() => dir.remove());
  const dataDir = join(dir.path, 'data');
  const events = blockStream(3);
  await writeBuffer(dataDir, events);
  const first = events[BLOCK]!.timeUs;
  const end = events[2 * BLOCK - 1]!.timeUs;
  await damagePartition(dataDir, end, POST);
  const gateway = await startTestGateway(NO_UPSTREAM, dataDir, { transport: 'ws' });
  defer(() => gateway.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  // The page watched everything up to three events before the block (a reload resumes there).
  const page = await openPage(browser);
  await page.evaluateOnNewDocument(`localStorage.setItem('contrail-explorer', ${JSON.stringify(JSON.stringify({ collections: '', dids: '', lastTimeUs: events[BLOCK - 3]!.timeUs }))});`);
  await page.goto(`http://127.0.0.1:${gateway.port}/`);
  let view = await waitForExplorer(page, (v) => /BufferDamaged/.test(v.status), 'the damaged block');
  assert.equal(view.rows.length, 2, 'the two events left before the block');
  assert.match(view.status, new RegExp(`time_us ${first} to ${end}`), `it says which events are lost: ${view.status}`);
  assert.doesNotMatch(view.status, /reconnecting/, 'it does not ask for them again');
  await waitUntil(() => gateway.server.hub.size === 0, 'the page to let its stream go');
  const skip = await page.$('#skip');
  assert.ok(skip && (await skip.isVisible()), 'a button to go on past the lost events');

  await skip.click();
  const after = events.length - 2 * BLOCK;
  view = await waitForExplorer(page, (v) => v.count === `${2 + after} events` && v.status === 'live', 'every event after the block', 60_000);
  assert.match(view.rows[0]!, new RegExp(` ${events.length - 1}$`), `the newest row is the buffer's last event: ${view.rows[0]}`);
  assert.match(view.rows.at(-1)!, new RegExp(` ${events.length - 500}$`), 'rows are the latest 500, in order');
  assert.equal(await page.$eval('#skip', (button) => (button as HTMLElement).hidden), true, 'the button is gone once it went on');
});
