import type { Entry } from '../events/index.ts';
import { framedOnce } from './entry-frames.ts';

/**
 * Jetstream v2's frames (lexicon network.bsky.jetstream.subscribeEvents, xrpc.v1.json framing):
 * every text frame is `{"$type":"message","payload":{…}}` or a terminal
 * `{"$type":"error","error":…,"message":…}`.
 *
 * An event's v2 frame is assembled from its stored v1 JSON without parsing it. The v1 JSON is
 * `{"did":…,"time_us":…,"kind":"K","K":{…}}` with the kind's object last (events/entry.ts
 * writes it so): a commit's fields move to the payload's top level, identity/account/sync keep
 * their object under the same key. The frame is built once per event and shared by every v2
 * subscriber, like the zstd frame. The head is ASCII: DIDs were syntax-checked upstream.
 */
export const SUBSCRIBE_EVENTS_NSID = 'network.bsky.jetstream.subscribeEvents';

/** Text that precedes and follows the body taken from the v1 JSON. */
function frameParts(entry: Entry): { head: string; bodyStart: number; tail: string } {
  const key = `"${entry.kind}":{`;
  const keyAt = entry.json.indexOf(key);
  if (keyAt < 0) throw new Error(`event at time_us ${entry.timeUs} has no ${key} object`);
  const head = `{"$type":"message","payload":{"$type":"${SUBSCRIBE_EVENTS_NSID}#${entry.kind}","seq":${entry.seq},"did":"${entry.did}","time":"${rfc3339Micros(entry.timeUs)}",`;
  // A commit's `"commit":{ … }}` becomes `… }}` (its fields, then payload and envelope close);
  // any other kind's `"K":{ … }}` stays and gains the envelope's closing brace.
  return entry.kind === 'commit' ? { head, bodyStart: keyAt + key.length, tail: '' } : { head, bodyStart: keyAt, tail: '}' };
}

/** The event's v2 message frame, made once and shared (entry-frames.ts). */
export const v2Frame = framedOnce('v2 frame', (entry): Buffer => {
  const { head, bodyStart, tail } = frameParts(entry);
  const frame = Buffer.allocUnsafe(head.length + entry.json.byteLength - bodyStart + tail.length);
  let at = frame.write(head, 0, 'latin1');
  at += entry.json.copy(frame, at, bodyStart);
  frame.write(tail, at, 'latin1');
  return frame;
});

/** The frame's length without building it (maxMessageSizeBytes counts the whole v2 frame). */
export function v2FrameBytes(entry: Entry): number {
  const frame = v2Frame.made(entry);
  if (frame) return frame.byteLength;
  const { head, bodyStart, tail } = frameParts(entry);
  return head.length + entry.json.byteLength - bodyStart + tail.length;
}

export type InfoName = 'OutdatedCursor' | 'FutureCursor';

/** An advisory #info frame: no seq, does not move the cursor. */
export function v2InfoFrame(name: InfoName, message: string): Buffer {
  return Buffer.from(JSON.stringify({ $type: 'message', payload: { $type: `${SUBSCRIBE_EVENTS_NSID}#info`, name, message } }));
}

/**
 * A terminal error frame; the server closes the stream right after it. `cursor` (contrail's, a
 * timestamp cursor) is where to resume past what the error lost: lexicon objects are open, and
 * a client ignores a field it does not know.
 */
export function v2ErrorFrame(error: string, message: string, cursor?: number): Buffer {
  return Buffer.from(JSON.stringify({ $type: 'error', error, message, cursor }));
}

/** RFC 3339 in UTC with exactly six fractional digits: 2026-12-01T16:43:30.123456Z. */
export function rfc3339Micros(timeUs: number): string {
  const millis = Math.floor(timeUs / 1000);
  return new Date(millis).toISOString().slice(0, -1) + String(timeUs - millis * 1000).padStart(3, '0') + 'Z';
}
