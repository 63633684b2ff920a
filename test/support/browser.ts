/**
 * A real browser for the tests: Debian's chromium (/usr/bin/chromium) driven by puppeteer-core,
 * which never downloads a browser. Where chromium is missing and we are root (CI), it is
 * installed with apt-get, as .ci/run does; otherwise the suites skip and say why. Also: what the
 * explorer page shows, read as a person reads it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { waitUntil } from './poll.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The reason browser tests cannot run here (after installing chromium if we may), or undefined. */
export function browserUnavailable(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (process.getuid?.() !== 0) return `no chromium at ${CHROMIUM} (apt-get install chromium, as .ci/run does)`;
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    return `no chromium at ${CHROMIUM}, and apt-get could not install it: ${(err as Error).message}`;
  }
  return existsSync(CHROMIUM) ? undefined : `apt-get installed chromium but there is none at ${CHROMIUM}`;
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Containers and CI run as root without user namespaces; the page only talks to 127.0.0.1.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

/**
 * A new tab. tsx compiles the functions we hand to page.evaluate with esbuild's keepNames,
 * which calls a `__name` helper that exists only in Node: the page gets a harmless one.
 */
export async function openPage(browser: Browser): Promise<Page> {
  const page = await browser.newPage();
  await page.evaluateOnNewDocument('globalThis.__name = (fn) => fn;');
  return page;
}

/** The explorer's visible state, as a person reads it, and how many stream messages reached the page. */
export interface ExplorerView {
  status: string;
  rate: string;
  count: string;
  rows: string[];
  detail: string;
  received: number;
}

export async function readExplorer(page: Page): Promise<ExplorerView> {
  return page.evaluate(() => {
    const text = (id: string) => document.getElementById(id)!.innerText;
    return {
      status: text('status'),
      rate: text('rate'),
      count: text('count'),
      rows: [...document.querySelectorAll('#events li')].map((row) => (row as HTMLElement).innerText.replace(/\s+/g, ' ')),
      detail: text('detail'),
      received: Number(document.body.dataset.received ?? 0),
    };
  });
}

/** Polls the page until `condition` holds for what it shows. */
export async function waitForExplorer(page: Page, condition: (view: ExplorerView) => boolean, what: string, timeoutMs = 30_000): Promise<ExplorerView> {
  let view = await readExplorer(page);
  await waitUntil(async () => condition((view = await readExplorer(page))), `the explorer to show ${what}`, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}; it shows ${JSON.stringify(view)}`);
  });
  return view;
}

/** Types a filter into the explorer and starts watching it. */
export async function watch(page: Page, filter: { collections?: string; dids?: string }): Promise<void> {
  for (const [id, value] of [['collections', filter.collections ?? ''], ['dids', filter.dids ?? '']] as const) {
    await page.click(`#${id}`, { count: 3 });
    await page.keyboard.press('Backspace');
    if (value) await page.type(`#${id}`, value);
  }
  await page.click('#apply');
}
