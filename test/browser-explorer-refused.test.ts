/**
 * An explorer tab refused for a limit (HTTP 429 at --max-connections-per-ip, 503 at
 * --max-subscribers: "retry later") says why and tries again by itself, so it goes live once
 * another tab is closed. In headless Chromium, against a real gateway on 127.0.0.1; the page is
 * the same on both transports, so one is enough.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserUnavailable, openPage, waitForExplorer } from './support/browser.ts';
import { startExplorerRig } from './support/explorer-rig.ts';
import { waitUntil } from './support/poll.ts';

test('an explorer tab refused at --max-connections-per-ip shows the 429 and goes live by itself once a tab closes', { skip: browserUnavailable() }, async (t) => {
  const { browser, gateway } = await startExplorerRig(t, { maxConnectionsPerIp: 1 });
  const origin = `http://127.0.0.1:${gateway.port}/`;

  const first = await openPage(browser);
  await first.goto(origin);
  await waitForExplorer(first, (v) => v.status === 'live', 'the first tab live');

  const second = await openPage(browser);
  await second.goto(origin);
  const refused = await waitForExplorer(second, (v) => v.status.startsWith('HTTP 429'), 'the second tab refused, with the reason');
  assert.match(refused.status, /^HTTP 429: at most 1 connections per client address/);

  await first.close();
  await waitUntil(() => gateway.server.hub.size === 0, "the first tab's stream to end");
  await waitForExplorer(second, (v) => v.status === 'live', 'the second tab live by itself');
  assert.equal(gateway.server.hub.size, 1);
});
