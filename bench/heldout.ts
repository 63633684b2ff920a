/**
 * Held-out events for compression measurements: the real network records in
 * test/fixtures/samples (rsky's binary frames and indigo's DAG-JSON frames) turned into
 * contrail events. They were never part of the dictionary's training corpus (synthetic).
 */
import { readdirSync } from 'node:fs';
import { CursorClock } from '../src/events/clock.ts';
import { buildEvents, type Entry } from '../src/events/entry.ts';
import { decodeFrame } from '../src/upstream/frame.ts';
import { parseMessage } from '../src/upstream/messages.ts';
import { fromDagJson } from '../test/support/dag-json.ts';
import { fixturePath, readFixture, readJsonFixture } from '../test/support/fixtures.ts';
import { encodeFrame } from '../test/support/frames.ts';

const RSKY = 'samples/rsky/rsky-relay/tests/interop/frames-bin/';
const INDIGO_BODIES = 'samples/indigo/atproto/repo/testdata/';
const INDIGO_SCENARIOS = 'samples/indigo/cmd/relay/testing/testdata/';

export function heldOutEvents(): Entry[] {
  const frames: Uint8Array[] = [];
  for (const name of readdirSync(fixturePath(RSKY)).sort()) frames.push(readFixture(RSKY + name));
  for (const name of readdirSync(fixturePath(INDIGO_BODIES)).sort()) {
    frames.push(encodeFrame({ op: 1, t: '#commit' }, fromDagJson(readJsonFixture(INDIGO_BODIES + name))));
  }
  for (const name of readdirSync(fixturePath(INDIGO_SCENARIOS)).sort()) {
    const scenario = readJsonFixture<{ messages: Array<{ frame: { header: object; body: unknown } }> }>(INDIGO_SCENARIOS + name);
    for (const { frame } of scenario.messages) frames.push(encodeFrame(frame.header, fromDagJson(frame.body)));
  }
  const clock = new CursorClock(Date.now() * 1000);
  const seen = new Set<string>();
  const events: Entry[] = [];
  for (const bytes of frames) {
    let message;
    try {
      message = parseMessage(decodeFrame(bytes, Infinity));
    } catch {
      continue; // a few scenario frames are deliberately broken
    }
    if (message.type !== 'commit' && message.type !== 'identity' && message.type !== 'account') continue;
    for (const entry of buildEvents(message, clock).entries) {
      // The scenarios repeat records; count each distinct event once.
      const key = entry.json.toString().replace(/"time_us":\d+/, '');
      if (seen.has(key)) continue;
      seen.add(key);
      events.push(entry);
    }
  }
  return events;
}
