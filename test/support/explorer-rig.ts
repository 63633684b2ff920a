/**
 * What every explorer test starts with: headless Chromium, a FakeRelay and a gateway (ws
 * transport) reading it from a fresh data dir, each stopped by the test's cleanup.
 */
import type { TestContext } from 'node:test';
import type { Browser } from 'puppeteer-core';
import type { GatewayConfig } from '../../src/config.ts';
import { launchBrowser } from './browser.ts';
import { cleanup } from './cleanup.ts';
import { FakeRelay } from './fake-relay.ts';
import { startTestGateway, tempDir } from './gateway.ts';

export interface ExplorerRig {
  browser: Browser;
  relay: FakeRelay;
  gateway: Awaited<ReturnType<typeof startTestGateway>>;
  /** The explorer's address. */
  origin: string;
}

export async function startExplorerRig(t: Pick<TestContext, 'after'>, overrides: Partial<GatewayConfig> = {}): Promise<ExplorerRig> {
  const defer = cleanup(t);
  const browser = await launchBrowser();
  defer(() => browser.close());
  const relay = await FakeRelay.start();
  defer(() => relay.stop());
  const dir = tempDir();
  defer(() => dir.remove());
  const gateway = await startTestGateway(relay.url, dir.path, { transport: 'ws', ...overrides });
  defer(() => gateway.stop());
  return { browser, relay, gateway, origin: `http://127.0.0.1:${gateway.port}/` };
}
