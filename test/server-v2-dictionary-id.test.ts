/**
 * getZstdDictionary's `id` and subscribeEvents' `zstdDictionary` name the same thing, so one
 * value must get the same answer from both: the dictionary (200) where subscribeEvents upgrades,
 * and a 400 where it refuses. subscribeEvents reads the value as an integer (a leading zero
 * still names the current ID) and refuses a repeated key; getZstdDictionary compared the raw
 * first value as a string, so `01668247156` was DictionaryNotFound there while the stream took it,
 * and `id=<current>&id=7` served the dictionary while `id=7&id=<current>` did not.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SUBSCRIBE_EVENTS, httpGet, upgradeRequest, withGateway } from './support/subscribe-client.ts';

const GET_ZSTD_DICTIONARY = '/xrpc/network.bsky.jetstream.getZstdDictionary';

describe('the dictionary ID on getZstdDictionary and subscribeEvents', () => {
  test('a value the stream takes as the current dictionary is served by getZstdDictionary, and one it refuses is refused', () =>
    withGateway({}, {}, async ({ gateway }) => {
      const id = String((await httpGet(gateway.port, '/dictionary')).headers['x-zstd-dictionary-id']);
      const values = [[id], [`0${id}`], [id, '7'], ['7', id], [id, id]];
      for (const given of values) {
        const query = (name: string) => given.map((value) => `${name}=${value}`).join('&');
        const stream = await upgradeRequest(gateway.port, `${SUBSCRIBE_EVENTS}?${query('zstdDictionary')}`);
        const dictionary = await httpGet(gateway.port, `${GET_ZSTD_DICTIONARY}?${query('id')}`);
        assert.equal(dictionary.status === 200, stream.status === 101, `${JSON.stringify(given)}: subscribeEvents ${stream.status}, getZstdDictionary ${dictionary.status} ${dictionary.body.length < 500 ? dictionary.body.toString() : ''}`);
      }
    }));
});
