/**
 * The explorer says why its stream ended (the SSE message named close: ServerShuttingDown,
 * ConsumerTooSlow) for as long as it is reconnecting, not only until EventSource reports the
 * drop. In headless Chromium, against a real gateway on 127.0.0.1; the page is the same on both
 * transports, so one is enough.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserUnavailable, openPage, waitForExplorer } from './support/browser.ts';
import { startExplorerRig } from './support/explorer-rig.ts';
import { waitUntil } from './support/poll.ts';

test('the explorer shows the reason its stream ended until it is live again', { skip: browserUnavailable() }, async (t) => {
  const { browser, gateway } = await startExplorerRig(t);

  const page = await openPage(browser);
  // Every status the page shows, in order, however briefly.
  await page.evaluateOnNewDocument(`
    window.statuses = [];
    new MutationObserver(() => {
      const text = document.getElementById('status')?.textContent;
      if (text !== undefined && text !== window.statuses.at(-1)) window.statuses.push(text);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  `);
  await page.goto(`http://127.0.0.1:${gateway.port}/`);
  await waitForExplorer(page, (v) => v.status === 'live', 'a live stream');

  gateway.server.hub.closeAll();
  let statuses: string[] = [];
  const ended = () => statuses.indexOf('live') + 1;
  await waitUntil(async () => {
    statuses = (await page.evaluate('window.statuses')) as string[];
    return statuses.at(-1) === 'live' && statuses.length > ended() + 1;
  }, 'the page to be down, then live again');
  for (const shown of statuses.slice(ended(), -1)) {
    assert.match(shown, /^ServerShuttingDown: server shutting down \(reconnecting/, `every status while down says why: ${JSON.stringify(statuses)}`);
  }
});
