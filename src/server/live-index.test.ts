/**
 * Property tests: for random filters and events, the live index (and the replay path's
 * wantsEvent) offer an event to exactly the subscribers the independent test filter
 * (test/support/subscribe-client.ts, written from Jetstream's rules) says want it, each once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Entry } from '../events/index.ts';
import { storedEvent, wants, type FilterSpec } from '../../test/support/subscribe-client.ts';
import { parseFilter, wantsEvent, type SubscriberFilter } from './filter.ts';
import { LiveIndex } from './live-index.ts';

const DIDS = ['did:plc:alice', 'did:plc:bob', 'did:web:example.com'];
const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow', 'fyi.unravel.frontpage.vote'];
const PATTERNS = [...COLLECTIONS, 'app.bsky.*', 'app.bsky.feed.*', 'fyi.*', 'app.bsky.graph.*'];

const KINDS = ['commit', 'identity', 'account', 'sync'];

// wantedCollections with kinds that exclude commit is refused before a filter exists.
const filterSpec: fc.Arbitrary<FilterSpec> = fc
  .record({
    wantedCollections: fc.subarray(PATTERNS),
    wantedDids: fc.subarray(DIDS),
    wantedKinds: fc.subarray(KINDS),
  })
  .filter((spec) => spec.wantedCollections.length === 0 || spec.wantedKinds.length === 0 || spec.wantedKinds.includes('commit'));

const entry: fc.Arbitrary<Entry> = fc
  .record({ did: fc.constantFrom(...DIDS), kind: fc.constantFrom(...KINDS), collection: fc.constantFrom(...COLLECTIONS) })
  .map(({ did, kind, collection }) => {
    const json = JSON.stringify({ did, time_us: 1, kind, ...(kind === 'commit' ? { commit: { collection } } : {}) });
    return { timeUs: 1, did, kind, collection: kind === 'commit' ? collection : null, json: Buffer.from(json) } as Entry;
  });

test('the live index offers each event to exactly the subscribers that want it, once each', () => {
  fc.assert(
    fc.property(fc.array(filterSpec, { minLength: 1, maxLength: 12 }), fc.array(entry, { minLength: 1, maxLength: 20 }), (specs, entries) => {
      const index = new LiveIndex<{ filter: SubscriberFilter; spec: FilterSpec }>();
      const subscribers = specs.map((spec) => ({ spec, filter: parseFilter(spec) }));
      for (const subscriber of subscribers) index.add(subscriber);
      for (const event of entries) {
        const offered: FilterSpec[] = [];
        index.forEachMatch(event, (s) => offered.push(s.spec), () => assert.fail('no size limit was set'));
        const expected = specs.filter((spec) => wants(spec, storedEvent(event.json.toString())));
        assert.equal(offered.length, new Set(offered).size, 'no subscriber is offered an event twice');
        assert.deepEqual(new Set(offered), new Set(expected));
        for (const subscriber of subscribers) {
          assert.equal(wantsEvent(subscriber.filter, event), expected.includes(subscriber.spec), 'the replay path agrees');
        }
      }
      for (const subscriber of subscribers) index.remove(subscriber);
      assert.equal(index.size, 0);
    }),
    { numRuns: 300 },
  );
});
