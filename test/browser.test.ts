/**
 * In a real browser (headless Chromium): EventSource on /stream resumes by itself after the
 * server ends its stream, and the explorer page at / does what a person expects of it. Each runs once
 * per transport against a real gateway (FakeRelay → ingest → LMDB → server) on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, Page } from 'puppeteer-core';
import type { Gateway } from '../src/gateway.ts';
import { browserUnavailable, launchBrowser, openPage, readExplorer, waitForExplorer, watch } from './support/browser.ts';
import { FakeRelay } from './support/fake-relay.ts';
import { tempDir } from './support/gateway.ts';
import { LIKE, POST, Upstream, recordFor, startRelayGateway, stopRelayGateway, waitUntil } from './support/subscribe-client.ts';
import { transportsUnderTest } from './support/transports.ts';

const ALICE = `did:plc:${'alice'.padEnd(24, 'a')}`;
const BOB = `did:plc:${'bob'.padEnd(24, 'a')}`;
const noChromium = browserUnavailable();

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`in Chromium, over ${transport}`, { skip: skip ?? noChromium }, () => {
    let browser: Browser;
    let relay: FakeRelay;
    let dir: ReturnType<typeof tempDir>;
    let gateway: Gateway;
    let up: Upstream;
    let page: Page;
    let n = 0;
    const post = (did: string) => up.create(did, POST, { ...recordFor(POST, ++n, did), text: `hello from the test, post ${n}` });
    const origin = () => `http://127.0.0.1:${gateway.port}`;

    before(async () => {
      browser = await launchBrowser();
      ({ relay, dir, gateway, up } = await startRelayGateway({ transport }));
    });

    afterEach(async () => {
      await page?.close();
    });

    after(async () => {
      await browser?.close();
      await stopRelayGateway({ relay, dir, gateway });
    });

    test('EventSource on /stream: events arrive with id = time_us; when the server ends the stream it says why, and the browser resumes at Last-Event-ID with no gap', async () => {
      page = await openPage(browser);
      await page.goto(`${origin()}/health`);
      await page.evaluate(`
        window.received = [];
        window.closes = [];
        window.opens = 0;
        const source = new EventSource('/stream?wantedDids=${ALICE}');
        source.onopen = () => window.opens++;
        source.onmessage = (message) => window.received.push({ id: message.lastEventId, data: message.data });
        source.addEventListener('close', (message) => window.closes.push(JSON.parse(message.data)));
      `);
      const seen = () => page.evaluate('({ received: window.received, closes: window.closes, opens: window.opens })') as Promise<{
        received: Array<{ id: string; data: string }>;
        closes: unknown[];
        opens: number;
      }>;
      await waitUntil(async () => (await seen()).opens === 1, 'the EventSource to open');
      post(ALICE);
      post(BOB);
      post(ALICE);
      await up.settle();
      await waitUntil(async () => (await seen()).received.length === 2, "Alice's two events");

      // The server ends every stream (as when it shuts down); Alice posts before the browser is back.
      gateway.server.hub.closeAll();
      post(ALICE);
      await up.settle();
      await waitUntil(async () => (await seen()).opens === 2, 'the EventSource to reconnect by itself', 60_000);
      await waitUntil(async () => (await seen()).received.length === 4, 'the resumed stream', 60_000);

      const { received, closes } = await seen();
      assert.deepEqual(closes, [{ type: 'error', error: 'ServerShuttingDown', message: 'server shutting down' }], 'the end came with its reason');
      const events = received.map((m) => ({ id: m.id, event: JSON.parse(m.data) }));
      for (const { id, event } of events) assert.equal(id, String(event.time_us), 'the SSE id is the event time_us');
      const texts = events.map((e) => e.event.commit.record.text);
      // Last-Event-ID is inclusive, like cursor: the last event before the end comes again, then what was missed.
      assert.deepEqual(texts, ['hello from the test, post 1', 'hello from the test, post 3', 'hello from the test, post 3', 'hello from the test, post 4']);
    });

    test('the explorer at /: filter, live rows, rate, event JSON, pause and resume without loss, clear, resume after a reload, links', async () => {
      page = await openPage(browser);
      await page.setViewport({ width: 1280, height: 720 });
      await page.goto(`${origin()}/`);
      assert.equal(await page.title(), 'contrail explorer');
      await waitForExplorer(page, (v) => v.status === 'live', 'a live stream');

      // Links: /health, /stats and the API summary, each answering.
      const links = await page.$$eval('nav a', (anchors) => anchors.map((a) => ({ text: a.textContent, href: (a as HTMLAnchorElement).href })));
      assert.deepEqual(links.map((l) => l.text), ['/health', '/stats', 'API']);
      for (const { href } of links) {
        const status = await page.evaluate((url) => fetch(url).then((r) => r.status), href);
        assert.equal(status, 200, href);
      }

      // A bad filter is refused with the server's reason, shown on the page.
      await watch(page, { collections: 'not a collection!' });
      await waitForExplorer(page, (v) => v.status.startsWith('HTTP 400: wantedCollections'), 'the reason for a bad filter');

      await watch(page, { collections: POST });
      await waitForExplorer(page, (v) => v.status === 'live', 'a live stream with the new filter');
      up.create(ALICE, LIKE);
      post(ALICE);
      post(BOB);
      await up.settle();
      let view = await waitForExplorer(page, (v) => v.rows.length === 2, 'two posts (not the like)');
      assert.match(view.rows[0]!, /create app\.bsky\.feed\.post did:plc:bob.* hello from the test, post \d+/, 'the newest first');
      assert.match(view.rows[1]!, /did:plc:alice/);
      assert.equal(view.count, '2 events');
      // The rate is over the last five seconds: two events make 0.4 a second.
      await waitForExplorer(page, (v) => v.rate === '0.4 events/s', 'the rate of what arrived');

      // Clicking an event shows its JSON.
      await page.click('#events li:nth-child(2)');
      view = await readExplorer(page);
      const shown = JSON.parse(view.detail);
      assert.equal(shown.did, ALICE);
      assert.equal(shown.commit.collection, POST);
      assert.equal(shown.kind, 'commit');

      // Paused, the page shows nothing new; resumed, it shows what came meanwhile. Nothing can
      // reach it once its stream is gone from the gateway, and once the gateway has stored the
      // post it has published it to every stream it has.
      await page.click('#pause');
      const { received } = await waitForExplorer(page, (v) => v.status === 'paused', 'paused');
      await waitUntil(() => gateway.server.hub.size === 0, "the paused page's stream to close");
      post(ALICE);
      await up.settle();
      assert.equal((await readExplorer(page)).received, received, 'no message reached the paused page');
      assert.equal((await readExplorer(page)).rows.length, 2, 'nothing new while paused');
      await page.click('#pause');
      view = await waitForExplorer(page, (v) => v.rows.length === 3, 'the post made while paused');
      assert.match(view.rows[0]!, /did:plc:alice/);

      await page.click('#clear');
      view = await readExplorer(page);
      assert.deepEqual([view.rows.length, view.count, view.detail], [0, '0 events', '']);

      // Gone (a reload, a closed tab), the page picks up where it left off: what was missed, nothing shown twice.
      post(BOB);
      await up.settle();
      await waitForExplorer(page, (v) => v.rows.length === 1, 'one more post');
      await page.goto('about:blank');
      post(ALICE);
      post(BOB);
      await up.settle();
      await page.goto(`${origin()}/`);
      view = await waitForExplorer(page, (v) => v.rows.length === 2, 'the two posts made while away');
      assert.equal(await page.$eval('#collections', (input) => (input as HTMLInputElement).value), POST, 'the filter is remembered');
      assert.match(view.rows[0]!, /did:plc:bob/);
      assert.match(view.rows[1]!, /did:plc:alice/);
    });

    test('the explorer screenshot helper writes a PNG of what the page shows', async () => {
      const { screenshotExplorer } = await import('./support/explorer-screenshot.ts');
      page = await openPage(browser);
      const out = tempDir();
      try {
        const file = join(out.path, 'explorer.png');
        await screenshotExplorer(page, origin(), file, { collections: POST }, () => {
          post(ALICE);
          post(BOB);
        });
        const png = readFileSync(file);
        assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
        assert.ok(png.byteLength > 10_000, 'a real image, not a blank one');
      } finally {
        out.remove();
      }
    });
  });
}
