/**
 * Golden v2 frames: each shape subscribeEvents sends, byte for byte, from a fixed event. The
 * server tests check every live frame against an independent builder; these pin the bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry } from '../src/events/index.ts';
import { rfc3339Micros, v2ErrorFrame, v2Frame, v2FrameBytes, v2InfoFrame } from '../src/server/v2-frames.ts';

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const TIME_US = 1_764_607_410_123_456;

function entry(kind: Entry['kind'], collection: string | null, json: string): Entry {
  return { timeUs: TIME_US, seq: 42, did: DID, kind, collection, json: Buffer.from(json) };
}

const cases: Array<[name: string, entry: Entry, frame: string]> = [
  [
    'commit create',
    entry(
      'commit',
      'app.bsky.feed.post',
      `{"did":"${DID}","time_us":${TIME_US},"kind":"commit","commit":{"rev":"3lbzxkeydqe2a","operation":"create","collection":"app.bsky.feed.post","rkey":"3lbzxkew4wc2a","record":{"$type":"app.bsky.feed.post","createdAt":"2026-12-01T16:43:30.000Z","text":"hi"},"cid":"bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}}`,
    ),
    `{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":42,"did":"${DID}","time":"2025-12-01T16:43:30.123456Z","rev":"3lbzxkeydqe2a","operation":"create","collection":"app.bsky.feed.post","rkey":"3lbzxkew4wc2a","record":{"$type":"app.bsky.feed.post","createdAt":"2026-12-01T16:43:30.000Z","text":"hi"},"cid":"bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}}`,
  ],
  [
    'commit delete',
    entry('commit', 'app.bsky.feed.like', `{"did":"${DID}","time_us":${TIME_US},"kind":"commit","commit":{"rev":"3lbzxkeydqe2a","operation":"delete","collection":"app.bsky.feed.like","rkey":"3lbzxkew4wc2a"}}`),
    `{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":42,"did":"${DID}","time":"2025-12-01T16:43:30.123456Z","rev":"3lbzxkeydqe2a","operation":"delete","collection":"app.bsky.feed.like","rkey":"3lbzxkew4wc2a"}}`,
  ],
  [
    'identity',
    entry('identity', null, `{"did":"${DID}","time_us":${TIME_US},"kind":"identity","identity":{"did":"${DID}","handle":"alice.bsky.social","seq":9001,"time":"2025-12-01T16:43:30.100Z"}}`),
    `{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#identity","seq":42,"did":"${DID}","time":"2025-12-01T16:43:30.123456Z","identity":{"did":"${DID}","handle":"alice.bsky.social","seq":9001,"time":"2025-12-01T16:43:30.100Z"}}}`,
  ],
  [
    'account',
    entry('account', null, `{"did":"${DID}","time_us":${TIME_US},"kind":"account","account":{"active":false,"did":"${DID}","seq":9002,"status":"deactivated","time":"2025-12-01T16:43:30.100Z"}}`),
    `{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#account","seq":42,"did":"${DID}","time":"2025-12-01T16:43:30.123456Z","account":{"active":false,"did":"${DID}","seq":9002,"status":"deactivated","time":"2025-12-01T16:43:30.100Z"}}}`,
  ],
  [
    'sync',
    entry(
      'sync',
      null,
      `{"did":"${DID}","time_us":${TIME_US},"kind":"sync","sync":{"blocks":{"$bytes":"OqJlcm9vdHOB2CpYJQABcRIgne/+YcXXSHDi7JqSwnvbBLw"},"data":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm","did":"${DID}","rev":"3mw73emtrxr2p","seq":9003,"time":"2025-12-01T16:43:30.100Z"}}`,
    ),
    `{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#sync","seq":42,"did":"${DID}","time":"2025-12-01T16:43:30.123456Z","sync":{"blocks":{"$bytes":"OqJlcm9vdHOB2CpYJQABcRIgne/+YcXXSHDi7JqSwnvbBLw"},"data":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm","did":"${DID}","rev":"3mw73emtrxr2p","seq":9003,"time":"2025-12-01T16:43:30.100Z"}}}`,
  ],
];

for (const [name, event, frame] of cases) {
  test(`#${name}: the exact frame, and its length without building it`, () => {
    const fresh = { ...event };
    assert.equal(v2FrameBytes(fresh), Buffer.byteLength(frame));
    assert.equal(v2Frame(fresh).toString(), frame);
    assert.equal(v2Frame(fresh), v2Frame(fresh), 'built once, then shared');
  });
}

test('#info and the error frame', () => {
  assert.equal(
    v2InfoFrame('OutdatedCursor', 'events may have been missed').toString(),
    '{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#info","name":"OutdatedCursor","message":"events may have been missed"}}',
  );
  assert.equal(
    v2InfoFrame('FutureCursor', 'starting at the live tip').toString(),
    '{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#info","name":"FutureCursor","message":"starting at the live tip"}}',
  );
  assert.equal(v2ErrorFrame('ConsumerTooSlow', 'too slow').toString(), '{"$type":"error","error":"ConsumerTooSlow","message":"too slow"}');
});

test('time: RFC 3339 UTC with exactly six fractional digits', () => {
  assert.equal(rfc3339Micros(1_764_607_410_000_001), '2025-12-01T16:43:30.000001Z');
  assert.equal(rfc3339Micros(1_764_607_410_999_999), '2025-12-01T16:43:30.999999Z');
  assert.equal(rfc3339Micros(1_000_000_000_000_000), '2001-09-09T01:46:40.000000Z');
});
