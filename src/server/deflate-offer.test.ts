import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takesDeflateOffer } from './deflate-offer.ts';

test('offers taken: permessage-deflate by its exact name, with valid RFC 7692 parameters, in any offer of the list', () => {
  for (const header of [
    'permessage-deflate',
    'permessage-deflate; client_max_window_bits',
    'permessage-deflate; client_max_window_bits=8',
    'permessage-deflate; client_max_window_bits="15"',
    'permessage-deflate;client_no_context_takeover; server_no_context_takeover',
    'foo, permessage-deflate',
    'permessage-deflate; foo=bar, permessage-deflate; client_max_window_bits',
    'x; a="1, 2", permessage-deflate',
  ]) {
    assert.equal(takesDeflateOffer(header), true, header);
  }
});

test('offers declined: another name, an unknown or repeated parameter, a window out of range, a server window cap, broken syntax', () => {
  for (const header of [
    undefined,
    '',
    'permessage-deflate-x',
    'PERMESSAGE-DEFLATE',
    'x-webkit-deflate-frame',
    'foo; bar="permessage-deflate"',
    'permessage-deflate; foo=bar',
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; client_max_window_bits=16',
    'permessage-deflate; client_max_window_bits=08',
    'permessage-deflate; client_max_window_bits=abc',
    'permessage-deflate; server_max_window_bits=10',
    'permessage-deflate; server_max_window_bits=15',
    'permessage-deflate;',
    'permessage-deflate; client_max_window_bits="10',
  ]) {
    assert.equal(takesDeflateOffer(header), false, String(header));
  }
});
