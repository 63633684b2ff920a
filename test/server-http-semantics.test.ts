/**
 * What HTTP caches and clients read from the plain routes' headers, on both transports: `/`
 * answers a browser with the explorer and anything else with the plain-text summary, so both
 * answers say they vary with Accept, and a cache in front (a CDN, a proxy's cache) never hands
 * one to the other; and a method the server does not serve is a 405 that names the ones it does
 * (Allow), as RFC 9110 15.5.6 requires.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';
import { cleanup } from './support/cleanup.ts';
import { transportsUnderTest } from './support/transports.ts';

for (const { transport, skip } of await transportsUnderTest()) {
  describe(`HTTP semantics of the plain routes over ${transport}`, { skip }, () => {
    test('/ is chosen by Accept, and both of its answers say Vary: Accept', async (t) => {
      const h = await startRelayGateway({ transport });
      cleanup(t)(() => stopRelayGateway(h));
      const root = `http://127.0.0.1:${h.gateway.port}/`;
      const page = await fetch(root, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
      const summary = await fetch(root, { headers: { accept: '*/*' } });
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(summary.headers.get('content-type') ?? '', /^text\/plain/);
      for (const [name, answer] of [['the explorer', page], ['the summary', summary]] as const) {
        await answer.arrayBuffer();
        assert.match(answer.headers.get('vary') ?? '', /(^|,\s*)accept(\s*,|$)/i, `${name} says it varies with Accept`);
      }
    });

    test('a method other than GET and HEAD is a 405 naming them in Allow, on every route', async (t) => {
      const h = await startRelayGateway({ transport });
      cleanup(t)(() => stopRelayGateway(h));
      for (const path of ['/', '/stats', '/stream', '/subscribe', '/no-such-page']) {
        for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
          const answer = await fetch(`http://127.0.0.1:${h.gateway.port}${path}`, { method });
          assert.equal(answer.status, 405, `${method} ${path}`);
          assert.equal(answer.headers.get('allow'), 'GET, HEAD', `${method} ${path} names the methods served`);
          assert.match(await answer.text(), /only GET is served here/);
        }
      }
    });
  });
}
