/**
 * subscribeEvents refuses /subscribe's parameters with a 400 naming what v2 uses instead, so a
 * client moving over is not silently given something else. `wantedKinds` and `heartbeat` were
 * missing from that list: `wantedKinds=identity` on v2 was ignored (every kind came, commits
 * included), and `heartbeat=30s` was ignored (no heartbeat ever came).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSubscribeEventsQuery, XrpcError } from '../src/server/subscribe-events.ts';

const request = (query: string) => ({ method: 'GET', path: '/xrpc/network.bsky.jetstream.subscribeEvents', query, header: () => undefined, remoteAddress: '127.0.0.1' });

test('v2 refuses v1’s wantedKinds and heartbeat with a 400 naming what to use, as it does wantedCollections', () => {
  assert.throws(() => parseSubscribeEventsQuery(request('wantedCollections=app.bsky.feed.post'), 1), XrpcError, 'the existing refusal');
  for (const query of ['wantedKinds=identity', 'heartbeat=30s']) {
    assert.throws(() => parseSubscribeEventsQuery(request(query), 1), (err: unknown) => err instanceof XrpcError && err.status === 400, `${query} is refused`);
  }
});
