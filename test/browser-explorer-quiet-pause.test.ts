/**
 * The explorer misses nothing when it is paused, or gone (a closed tab opened again), before it has
 * shown any event: a quiet filter (one DID, a rare collection) often has none yet. What arrives
 * meanwhile is shown once it is back. In headless Chromium, against a real gateway on 127.0.0.1;
 * the page is the same on both transports, so one is enough.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserUnavailable, openPage, readExplorer, waitForExplorer, watch } from './support/browser.ts';
import { startExplorerRig } from './support/explorer-rig.ts';
import { waitUntil } from './support/poll.ts';
import { LIKE, POST, Upstream, recordFor } from './support/subscribe-client.ts';

const QUIET = `did:plc:${'quiet'.padEnd(24, 'a')}`;
const BUSY = `did:plc:${'busy'.padEnd(24, 'a')}`;

test('an explorer paused, or closed and opened again, before its first event shows what arrived meanwhile', { skip: browserUnavailable() }, async (t) => {
  const { browser, relay, gateway, origin } = await startExplorerRig(t);
  await relay.waitForConnections(1);
  const up = new Upstream(relay, () => gateway.port);
  let n = 0;
  const post = (did: string) => up.create(did, POST, { ...recordFor(POST, ++n, did), text: `post ${n}` });
  // Events before the page watches, none of them its DID's: the buffer is not empty.
  post(BUSY);
  up.create(BUSY, LIKE);
  await up.settle();

  const page = await openPage(browser);
  await page.goto(origin);
  await watch(page, { dids: QUIET });
  await waitForExplorer(page, (v) => v.status === 'live', 'a live stream of the quiet DID');
  post(BUSY);
  await up.settle();

  // Paused before anything was shown: the DID posts meanwhile.
  await page.click('#pause');
  await waitForExplorer(page, (v) => v.status === 'paused', 'paused');
  await waitUntil(() => gateway.server.hub.size === 0, "the paused page's stream to close");
  post(QUIET);
  post(BUSY);
  await up.settle();
  await page.click('#pause');
  let view = await waitForExplorer(page, (v) => v.rows.length > 0, 'the post made while paused', 15_000);
  assert.equal(view.rows.length, 1);
  assert.match(view.rows[0]!, /create app\.bsky\.feed\.post did:plc:quiet/);

  // A new filter, and the tab closed before its first event: its DID likes while the page is away.
  await watch(page, { dids: BUSY, collections: LIKE });
  await waitForExplorer(page, (v) => v.status === 'live' && v.rows.length === 0, 'a live stream of the new filter');
  await page.close();
  await waitUntil(() => gateway.server.hub.size === 0, "the closed tab's stream to close");
  up.create(BUSY, LIKE);
  post(BUSY);
  await up.settle();
  const again = await openPage(browser);
  await again.goto(origin);
  view = await waitForExplorer(again, (v) => v.rows.length > 0, 'the like made while away', 15_000);
  assert.equal(view.rows.length, 1);
  assert.match(view.rows[0]!, /create app\.bsky\.feed\.like did:plc:busy/);
  assert.equal((await readExplorer(again)).rows.length, 1, 'nothing else, nothing twice');
});
