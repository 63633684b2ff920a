/**
 * A screenshot of the explorer watching a filter, shared by the browser test and
 * scripts/explorer-screenshot.ts (which makes the README's picture against the demo upstream).
 */
import type { Page } from 'puppeteer-core';
import { waitForExplorer, watch } from './browser.ts';

export async function screenshotExplorer(
  page: Page,
  origin: string,
  file: string,
  filter: { collections?: string; dids?: string },
  /** Makes events happen once the page is watching (a no-op where the upstream is live). */
  produce: () => void,
  rows = 2,
): Promise<void> {
  await page.setViewport({ width: 1280, height: 720 });
  await page.goto(`${origin}/`);
  await watch(page, filter);
  await waitForExplorer(page, (v) => v.status === 'live', 'a live stream');
  produce();
  await waitForExplorer(page, (v) => v.rows.length >= rows, `${rows} rows`, 60_000);
  await page.click('#events li:nth-child(2)');
  await page.screenshot({ path: file as `${string}.png` });
}
