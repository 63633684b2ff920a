/**
 * contrail_upstream_lag_seconds is, at each commit, now minus the upstream time of what was read.
 * A frame's `time` is the relay's string: one that is no date made the lag NaN, the value README
 * Metrics gives a node that reads no relay ("no value rather than a made-up 0, so lag alerts stay
 * quiet"), and the status line said "no upstream event yet" while events were stored. The lag is
 * measured from the newest upstream time that reads as a date.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alicePostCommit, httpGet, withGateway } from './support/subscribe-client.ts';

test("a frame whose time is no date leaves the upstream lag a number, measured from the last time that is one", () =>
  withGateway({}, {}, async ({ gateway, up }) => {
    const lag = async () => {
      const metrics = (await httpGet(gateway.metricsPort, '/metrics')).body.toString();
      return /^contrail_upstream_lag_seconds (\S+)$/m.exec(metrics)?.[1];
    };
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    up.frame((seq) => alicePostCommit(seq, { time: hourAgo }));
    await up.settle();
    const before = Number(await lag());
    assert.ok(before >= 3_600, `lag ${before} after a frame an hour old`);

    up.frame((seq) => alicePostCommit(seq, { time: 'not a date' }));
    await up.settle();
    const after = await lag();
    assert.ok(Number(after) >= before, `lag ${after} after a frame whose time is no date: still measured from the frame an hour old`);
  }));
