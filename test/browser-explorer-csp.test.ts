/**
 * The explorer is served with a Content-Security-Policy that lets its own script and style run
 * and nothing else: were an event's markup ever to reach the document, it could neither run a
 * script nor load or send anything beyond this gateway. The page itself still works under it
 * (test/browser.test.ts drives it). In headless Chromium, against a real gateway on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserUnavailable, openPage, waitForExplorer } from './support/browser.ts';
import { startExplorerRig } from './support/explorer-rig.ts';

test('the explorer runs its own script under a CSP that blocks any other', { skip: browserUnavailable() }, async (t) => {
  const { browser, gateway } = await startExplorerRig(t);

  const page = await openPage(browser);
  const response = await page.goto(`http://127.0.0.1:${gateway.port}/`);
  const headers = response!.headers();
  assert.match(headers['content-security-policy'] ?? '', /default-src 'none'/, 'a policy that allows only what it names');
  assert.equal(headers['x-content-type-options'], 'nosniff');
  await waitForExplorer(page, (v) => v.status === 'live', 'the page live under its own policy');

  // Markup as an event's text would bring it, put into the document as a careless page would.
  const blocked = await page.evaluate(async () => {
    const violations: string[] = [];
    // The inline handler and the script element are each refused with an event; the wait ends
    // at both, or at 10 s if either ran instead.
    const refusedBoth = new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => {
        violations.push(e.violatedDirective);
        if (violations.includes('script-src-attr') && violations.includes('script-src-elem')) resolve(undefined);
      });
      setTimeout(resolve, 10_000);
    });
    document.getElementById('events')!.insertAdjacentHTML('beforeend', '<li><img src="x.png" onerror="window.ran = 1"></li>');
    const script = document.createElement('script');
    script.textContent = 'window.ran = 2';
    document.body.appendChild(script);
    await refusedBoth;
    return { ran: (window as unknown as { ran?: number }).ran, violations };
  });
  assert.equal(blocked.ran, undefined, 'neither the handler nor the script ran');
  assert.deepEqual(blocked.violations.filter((d) => d.startsWith('script-src')).sort(), ['script-src-attr', 'script-src-elem'], 'the policy refused both');
});
