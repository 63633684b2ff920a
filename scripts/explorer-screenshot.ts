/**
 * Makes scripts/explorer.png, the README's picture of the explorer: a gateway on the demo
 * upstream (seeded, offline), Debian's chromium through puppeteer-core, and the same helper the
 * browser test checks (test/support/explorer-screenshot.ts).
 *
 *   npx tsx scripts/explorer-screenshot.ts
 */
import { fileURLToPath } from 'node:url';
import { startGateway } from '../src/gateway.ts';
import { browserUnavailable, launchBrowser, openPage } from '../test/support/browser.ts';
import { screenshotExplorer } from '../test/support/explorer-screenshot.ts';
import { tempDir, testConfig } from '../test/support/gateway.ts';

const OUT = fileURLToPath(new URL('explorer.png', import.meta.url));

const unavailable = browserUnavailable();
if (unavailable) throw new Error(unavailable);
const dir = tempDir('contrail-screenshot-');
const gateway = await startGateway(testConfig('demo:2026', dir.path));
const browser = await launchBrowser();
try {
  const page = await openPage(browser);
  await screenshotExplorer(page, `http://127.0.0.1:${gateway.port}`, OUT, { collections: 'app.bsky.feed.post' }, () => {}, 20);
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
  await gateway.stop();
  dir.remove();
}
