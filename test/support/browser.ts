/**
 * A real browser for the tests: Debian's chromium (/usr/bin/chromium, installed by .ci/run),
 * driven by puppeteer-core. Nothing is downloaded; where chromium is missing the suites skip
 * and say why.
 */
import { existsSync } from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The reason browser tests cannot run here, or undefined. */
export function browserUnavailable(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no chromium at ${CHROMIUM} (apt-get install chromium, as .ci/run does)`;
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Containers and CI run as root without user namespaces; the page only talks to 127.0.0.1.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}
