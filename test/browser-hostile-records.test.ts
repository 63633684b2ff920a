/**
 * The explorer shows what anyone may write into a record, a handle or an account status as text:
 * markup stays inert, and a value of an unexpected shape (an object where text should be, one
 * whose keys shadow Object.prototype's) is shown like any other event rather than breaking the
 * page's handler. In headless Chromium, against a real gateway (FakeRelay → ingest → LMDB → server);
 * the page is the same on both transports, so one is enough.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserUnavailable, openPage, readExplorer, waitForExplorer } from './support/browser.ts';
import { startExplorerRig } from './support/explorer-rig.ts';
import { ALICE, POST, Upstream, recordFor } from './support/subscribe-client.ts';

test('the explorer shows hostile records as text, each one, and runs none of them', { skip: browserUnavailable() }, async (t) => {
  const { browser, relay, gateway } = await startExplorerRig(t);
  await relay.waitForConnections(1);
  const up = new Upstream(relay, () => gateway.port);

  const page = await openPage(browser);
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push((err as Error).message));
  await page.goto(`http://127.0.0.1:${gateway.port}/`);
  await waitForExplorer(page, (v) => v.status === 'live', 'a live stream');

  const records: Array<Record<string, unknown>> = [
    { text: '<img src=x onerror="window.injected = 1">' },
    { text: '</script><script>window.injected = 2</script>' },
    { text: { toString: 'an object whose toString is a string' } },
    { text: { valueOf: 1, toString: 2 } },
    { text: 42 },
    { subject: { toString: 'x' } },
  ];
  let n = 0;
  for (const record of records) up.create(ALICE, POST, { ...recordFor(POST, ++n, ALICE), ...record });
  up.identity(ALICE, '<img src=x onerror="window.injected = 3">');
  up.account(ALICE, false, '<svg onload="window.injected = 4">');
  await up.settle();
  const sent = records.length + 2;

  const view = await waitForExplorer(page, (v) => v.received === sent, `the ${sent} events`);
  assert.deepEqual(pageErrors, [], 'no event broke the page');
  assert.equal(view.rows.length, sent, 'every event has its row');
  assert.equal(view.count, `${sent} events`);
  assert.match(view.rows[0]!, /account did:plc:alice\S* <svg onload="window\.injected = 4">$/);
  assert.match(view.rows[1]!, /identity did:plc:alice\S* <img src=x onerror="window\.injected = 3">$/);
  assert.match(view.rows.at(-1)!, /<img src=x onerror="window\.injected = 1">$/, 'markup is shown as text');
  assert.match(view.rows.at(-2)!, /<\/script><script>window\.injected = 2<\/script>$/);
  for (let row = 1; row <= sent; row++) {
    await page.click(`#events li:nth-child(${row})`);
    assert.equal(JSON.parse((await readExplorer(page)).detail).did, ALICE, `row ${row}'s JSON is shown`);
  }
  assert.equal(await page.evaluate('window.injected'), undefined, 'no markup ran');
  assert.equal(await page.$$eval('#events img, #events svg, #events script, #detail *', (found) => found.length), 0, 'no element came from an event');
  assert.deepEqual(pageErrors, []);
});
