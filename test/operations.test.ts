/**
 * What an operator reads: /stats on an empty buffer, the Prometheus metrics (names in base units,
 * no family clashes under OpenMetrics, no invented values before there is data), and where
 * /metrics listens.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { ContrailProcess } from './support/contrail-process.ts';
import { samples } from './support/exposition.ts';
import { tempDir } from './support/gateway.ts';
import { POST, httpGet, startRelayGateway, stopRelayGateway } from './support/subscribe-client.ts';

function get(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A gateway on a fresh data dir connected to a FakeRelay, both stopped after the test. */
async function gatewayWithRelay(t: { after: (fn: () => Promise<void>) => void }) {
  const h = await startRelayGateway({});
  t.after(() => stopRelayGateway(h));
  return h;
}

test('an empty buffer: /stats has oldestTimeUs and newestTimeUs as null; lag and span metrics are NaN, not a made-up 0', async (t) => {
  const { gateway, up } = await gatewayWithRelay(t);
  const stats = JSON.parse((await httpGet(gateway.port, '/stats')).body.toString());
  assert.deepEqual(
    { oldestTimeUs: stats.oldestTimeUs, newestTimeUs: stats.newestTimeUs, eventCount: stats.eventCount, upstreamCursor: stats.upstreamCursor },
    { oldestTimeUs: null, newestTimeUs: null, eventCount: 0, upstreamCursor: null },
  );
  let metrics = samples((await get('127.0.0.1', gateway.metricsPort, '/metrics')).body);
  for (const name of ['contrail_upstream_lag_seconds', 'contrail_store_oldest_event_timestamp_seconds', 'contrail_store_newest_event_timestamp_seconds']) {
    assert.ok(Number.isNaN(metrics.get(name)), `${name} = ${metrics.get(name)}`);
  }
  assert.equal(metrics.get('contrail_store_buffered_events'), 0);

  up.create(`did:plc:${'a'.repeat(24)}`, POST);
  const { newestTimeUs } = await up.settle();
  metrics = samples((await get('127.0.0.1', gateway.metricsPort, '/metrics')).body);
  assert.equal(metrics.get('contrail_store_newest_event_timestamp_seconds'), newestTimeUs! / 1e6);
  assert.equal(metrics.get('contrail_store_oldest_event_timestamp_seconds'), newestTimeUs! / 1e6);
  assert.equal(metrics.get('contrail_store_buffered_events'), 1);
  const lag = metrics.get('contrail_upstream_lag_seconds')!;
  assert.ok(lag >= 0 && lag < 3600, `lag ${lag}`);
});

test('metric names: base units, timestamps as _timestamp_seconds, and no gauge named like a counter family (OpenMetrics)', async (t) => {
  const { gateway } = await gatewayWithRelay(t);
  const exposition = (await get('127.0.0.1', gateway.metricsPort, '/metrics')).body;
  const families = new Map<string, string>();
  for (const [, name = '', type = ''] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name, type);
  const ours = [...families].filter(([name]) => name.startsWith('contrail_'));
  assert.ok(ours.length > 20, 'the gateway registers its metrics');
  for (const [name, type] of ours) {
    assert.doesNotMatch(name, /_(us|ms|micros|millis|minutes|hours|kb|mb|gb)(_|$)/, `${name}: not a base unit`);
    if (/time(stamp)?(_|$)/.test(name)) assert.match(name, /_timestamp_seconds$/, `${name}: a point in time is _timestamp_seconds`);
    if (type === 'counter') {
      assert.match(name, /_total$/, `${name}: counters end in _total`);
      const family = name.replace(/_total$/, '');
      assert.ok(!families.has(family), `${family} (a ${families.get(family)}) clashes with the counter family of ${name}`);
    }
  }
});

test('/metrics answers with a query string (a Prometheus job with params) and 404s any other path', async (t) => {
  const { gateway } = await gatewayWithRelay(t);
  const plain = await get('127.0.0.1', gateway.metricsPort, '/metrics');
  const withQuery = await get('127.0.0.1', gateway.metricsPort, '/metrics?module=contrail&x=1');
  assert.equal(withQuery.status, 200, withQuery.body);
  assert.match(withQuery.body, /^# TYPE contrail_/m);
  assert.equal(plain.status, 200);
  for (const path of ['/', '/metricsx', '/metrics/', '/other?metrics']) {
    assert.equal((await get('127.0.0.1', gateway.metricsPort, path)).status, 404, path);
  }
});

test('/metrics listens on --metrics-host (loopback by default), not on --host', async (t) => {
  // 127.0.0.2 is loopback too, but another address: --host must not decide where metrics listen.
  const dir = tempDir();
  t.after(() => dir.remove());
  const args = ['serve', '--upstream', 'ws://127.0.0.1:9', '--data-dir', dir.path, '--host', '127.0.0.2', '--port', '0', '--metrics-port', '0'];
  const contrail = new ContrailProcess(args);
  t.after(() => contrail.stop());
  const port = await contrail.waitServing();
  const metricsPort = (await contrail.waitForLog((e) => e.msg === 'serving Prometheus metrics at /metrics')).port as number;
  assert.equal((await get('127.0.0.2', port, '/health')).status, 200);
  assert.equal((await get('127.0.0.1', metricsPort, '/metrics')).status, 200);
  await assert.rejects(get('127.0.0.2', metricsPort, '/metrics'), /ECONNREFUSED/);
  await contrail.stop();

  const moved = new ContrailProcess([...args, '--metrics-host', '127.0.0.2']);
  t.after(() => moved.stop());
  const movedPort = (await moved.waitForLog((e) => e.msg === 'serving Prometheus metrics at /metrics')).port as number;
  assert.equal((await get('127.0.0.2', movedPort, '/metrics')).status, 200);
  await assert.rejects(get('127.0.0.1', movedPort, '/metrics'), /ECONNREFUSED/);
});
