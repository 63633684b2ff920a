import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readClientMessage } from './client-message.ts';
import { parseFilter } from './filter.ts';

const current = parseFilter({ maxMessageSizeBytes: 5_000 });
const read = (text: string, binary = false, wire: 'v1' | 'v2' = 'v1') => readClientMessage(Buffer.from(text), binary, wire, current);
const closeOf = (text: string) => {
  const request = read(text);
  assert.equal(request.kind, 'close', text);
  return (request as Extract<typeof request, { kind: 'close' }>).close;
};

test('options_update replaces the filter; without maxMessageSizeBytes the limit stays', () => {
  const request = read(JSON.stringify({ type: 'options_update', payload: { wantedCollections: ['app.bsky.feed.post'], wantedDids: [] } }));
  assert.equal(request.kind, 'filter');
  const { filter } = request as Extract<typeof request, { kind: 'filter' }>;
  assert.deepEqual([...filter.collections], ['app.bsky.feed.post']);
  assert.equal(filter.maxMessageBytes, 5_000);
  const lifted = read(JSON.stringify({ type: 'options_update', payload: { maxMessageSizeBytes: 0 } }));
  assert.equal((lifted as Extract<typeof lifted, { kind: 'filter' }>).filter.maxMessageBytes, 0);
});

test('a null payload is an empty one, as Jetstream v1 decodes it; an absent payload closes, as there', () => {
  const request = read('{"type":"options_update","payload":null}');
  assert.equal(request.kind, 'filter');
  const { filter, backfill } = request as Extract<typeof request, { kind: 'filter' }>;
  assert.deepEqual(filter, parseFilter({ maxMessageSizeBytes: 5_000 }));
  assert.equal(backfill, false);
  assert.match(closeOf('{"type":"options_update"}').reason, /^invalid options_update: payload must be an object$/);
});

test('binary messages and unknown types are ignored, as in Jetstream v1', () => {
  assert.deepEqual(read('{"type":"options_update"}', true), { kind: 'ignore' });
  assert.deepEqual(read('{"type":"something_else","payload":1}'), { kind: 'ignore' });
});

test('every bad message closes with its code, reason and metric label', () => {
  assert.deepEqual(
    [closeOf('{not json'), closeOf('[1]'), closeOf('{"type":"options_update","payload":[]}'), closeOf('{"type":"options_update","payload":{"wantedDids":"did:plc:x"}}')].map(
      ({ code, metric }) => [code, metric],
    ),
    [
      [1007, 'bad_message'],
      [1008, 'bad_message'],
      [1008, 'bad_options'],
      [1008, 'bad_options'],
    ],
  );
  assert.match(closeOf('{"type":"options_update","payload":{"wantedDids":"did:plc:x"}}').reason, /^invalid options_update: wantedDids must be an array$/);
  const v2 = read('{}', false, 'v2');
  assert.equal(v2.kind === 'close' && v2.close.metric, 'bad_message');
});

test('a type that is not a string closes with the reason, as Jetstream v1 (a Go string) refuses it; a null or absent one is ignored', () => {
  for (const type of ['5', 'true', '{}', '["options_update"]']) {
    const close = closeOf(`{"type":${type},"payload":{}}`);
    assert.deepEqual([close.code, close.metric], [1008, 'bad_message'], type);
    assert.match(close.reason, /"type" must be a string/, type);
  }
  assert.deepEqual(read('{"type":null,"payload":{}}'), { kind: 'ignore' });
  assert.deepEqual(read('{"payload":{}}'), { kind: 'ignore' });
});
