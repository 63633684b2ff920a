// The checks: what Jetstream v1 would send for each expected write, independently of
// contrail's code. Jetstream is Go: encoding/json over indigo's types, so struct fields come
// in declaration order, map keys (the record's) are sorted by their UTF-8 bytes, strings are
// HTML-escaped (<, >, & and U+2028/9 become \u sequences), and blobs are written as
// {$type, ref, mimeType, size}.
import assert from 'node:assert/strict';

/** What a received event says about the write it stands for (the shape Activity expects). */
export function project(event) {
  switch (event.kind) {
    case 'commit': {
      const { operation, collection, rkey, cid, record } = event.commit;
      return { kind: 'commit', did: event.did, operation, collection, rkey, ...(operation === 'delete' ? {} : { cid, record }) };
    }
    case 'identity':
      return { kind: 'identity', did: event.did, handle: event.identity.handle };
    case 'account':
      return {
        kind: 'account',
        did: event.did,
        active: event.account.active,
        ...(event.account.status === undefined ? {} : { status: event.account.status }),
      };
    default:
      return { kind: event.kind, unexpected: event };
  }
}

const strip = ({ label, ...rest }) => rest;

/**
 * The received events are exactly the expected ones, in order. On a mismatch the message
 * names the write (its label) so the failure reads as "which write went wrong".
 */
export function assertEventsMatch(events, expected, context) {
  const count = Math.min(events.length, expected.length);
  for (let i = 0; i < count; i++) {
    assert.deepStrictEqual(project(events[i]), strip(expected[i]), `${context}: event #${i} should be "${expected[i].label}"`);
  }
  if (events.length === expected.length) return;
  const detail =
    events.length > expected.length
      ? `first extra: ${JSON.stringify(events[expected.length])}`
      : `first missing: "${expected[events.length].label}"`;
  assert.fail(`${context}: ${events.length} events for ${expected.length} expected; ${detail}`);
}

/**
 * The ordering contract of `--verify`: a repo whose key is being fetched is held while other
 * repos go on, so repos may overtake one another, but each repo's events are exactly the expected
 * ones in their order, and time_us still only grows (it is given in emission order).
 */
export function assertEventsMatchPerRepo(events, expected, context) {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].time_us > events[i - 1].time_us, `${context}: time_us of event #${i} (${events[i].time_us}) must exceed ${events[i - 1].time_us}`);
  }
  const dids = new Set([...expected.map((e) => e.did), ...events.map((e) => e.did)]);
  for (const did of dids) {
    assertEventsMatch(events.filter((e) => e.did === did), expected.filter((e) => e.did === did), `${context}, ${did}`);
  }
}

/** Jetstream's filter semantics: collections (exact or `prefix.*`) apply to commits only; DIDs to every kind. */
export function wants(filter, expectation) {
  if (filter.wantedDids?.length && !filter.wantedDids.includes(expectation.did)) return false;
  if (expectation.kind !== 'commit' || !filter.wantedCollections?.length) return true;
  return filter.wantedCollections.some((wanted) =>
    wanted.endsWith('.*') ? expectation.collection.startsWith(wanted.slice(0, -1)) : expectation.collection === wanted,
  );
}

// ---- the exact text Jetstream v1 would send -----------------------------------------------
const GO_HTML_ESCAPES = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };
const goString = (text) => JSON.stringify(text).replace(/[<>&\u2028\u2029]/g, (c) => GO_HTML_ESCAPES[c]);
const utf8Order = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** An atproto-JSON value as Go's encoding/json writes it. */
export function goJson(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return goString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  if (value.$type === 'blob') {
    return `{"$type":"blob","ref":{"$link":${goString(value.ref.$link)}},"mimeType":${goString(value.mimeType)},"size":${value.size}}`;
  }
  const keys = Object.keys(value).sort(utf8Order);
  return `{${keys.map((key) => `${goString(key)}:${goJson(value[key])}`).join(',')}}`;
}

/**
 * The frame Jetstream v1 sends for `expectation`, taking from the received event only what a
 * writer cannot know in advance: time_us, the commit rev, and the upstream seq and time.
 */
export function jetstreamText(expectation, received) {
  const head = `{"did":${goString(expectation.did)},"time_us":${received.time_us},"kind":"${expectation.kind}"`;
  switch (expectation.kind) {
    case 'commit': {
      const { operation, collection, rkey, cid, record } = expectation;
      const body = operation === 'delete' ? '' : `,"record":${goJson(record)},"cid":${goString(cid)}`;
      return `${head},"commit":{"rev":${goString(received.commit.rev)},"operation":"${operation}","collection":${goString(collection)},"rkey":${goString(rkey)}${body}}}`;
    }
    case 'identity': {
      const { seq, time } = received.identity;
      return `${head},"identity":{"did":${goString(expectation.did)},"handle":${goString(expectation.handle)},"seq":${seq},"time":${goString(time)}}}`;
    }
    case 'account': {
      const { seq, time } = received.account;
      const status = expectation.status === undefined ? '' : `,"status":${goString(expectation.status)}`;
      return `${head},"account":{"active":${expectation.active},"did":${goString(expectation.did)},"seq":${seq}${status},"time":${goString(time)}}}`;
    }
  }
  throw new Error(`unknown kind ${expectation.kind}`);
}

const TID = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Stream-wide rules: time_us strictly increasing integers (the cursor), commit revs are TIDs
 * that never go backwards within a repo, and the upstream seq of identity/account events increases.
 */
export function assertStreamInvariants(events, context) {
  let lastTime = 0;
  let lastSeq = 0;
  const lastRev = new Map();
  for (const [i, event] of events.entries()) {
    assert.ok(Number.isSafeInteger(event.time_us) && event.time_us > lastTime, `${context}: time_us of event #${i} (${event.time_us}) must exceed ${lastTime}`);
    lastTime = event.time_us;
    if (event.kind === 'commit') {
      assert.match(event.commit.rev, TID, `${context}: event #${i} rev`);
      // A repo's revs only grow (events of one commit share its rev).
      assert.ok(event.commit.rev >= (lastRev.get(event.did) ?? ''), `${context}: event #${i} rev went backwards for ${event.did}`);
      lastRev.set(event.did, event.commit.rev);
    } else {
      const body = event[event.kind];
      assert.equal(body.did, event.did, `${context}: event #${i} ${event.kind}.did`);
      assert.match(body.time, DATETIME, `${context}: event #${i} ${event.kind}.time`);
      assert.ok(Number.isSafeInteger(body.seq) && body.seq > lastSeq, `${context}: event #${i} seq ${body.seq} must exceed ${lastSeq}`);
      lastSeq = body.seq;
    }
  }
}
