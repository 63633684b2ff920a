/**
 * Review test (fails on main): subscribeEvents refuses /subscribe's parameters with a 400 naming
 * the v2 one (README: "a bad or v1 parameter … 400 InvalidRequest"), so that a client moving
 * over is not silently given something else — but V1_PARAMETERS (subscribe-events.ts) lacks
 * `wantedKinds` and `heartbeat`. `wantedKinds=identity` on v2 is ignored: the client gets every
 * kind, commits included, which its filter excluded; `heartbeat=30s` is ignored and no
 * heartbeat ever comes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSubscribeEventsQuery, XrpcError } from '../src/server/subscribe-events.ts';

const request = (query: string) => ({ method: 'GET', path: '/xrpc/network.bsky.jetstream.subscribeEvents', query, header: () => undefined, remoteAddress: '127.0.0.1' });

test('v2 refuses v1’s wantedKinds and heartbeat with a 400 naming what to use, as it does wantedCollections', () => {
  assert.throws(() => parseSubscribeEventsQuery(request('wantedCollections=app.bsky.feed.post'), 1), XrpcError, 'the existing refusal');
  for (const query of ['wantedKinds=identity', 'heartbeat=30s']) {
    assert.throws(() => parseSubscribeEventsQuery(request(query), 1), (err: unknown) => err instanceof XrpcError && err.status === 400, `${query} is silently ignored`);
  }
});
