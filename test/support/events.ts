/** Frames → contrail's events the way ingest makes them, for benchmarks, training and tests. */
import type { CursorClock } from '../../src/events/clock.ts';
import { buildEvents, type Entry } from '../../src/events/entry.ts';
import { decodeFrame } from '../../src/upstream/frame.ts';
import { parseMessage, type UpstreamMessage } from '../../src/upstream/messages.ts';

export type EventMessage = Omit<Extract<UpstreamMessage, { type: 'commit' }>, 'proof'> | Extract<UpstreamMessage, { type: 'identity' | 'account' }>;

/** The message a frame carries if it is one that becomes events; throws DropError on bad frames. */
export function eventMessageOf(frame: Uint8Array): EventMessage | undefined {
  const message = parseMessage(decodeFrame(frame, Infinity));
  return message.type === 'commit' || message.type === 'identity' || message.type === 'account' ? message : undefined;
}

/** The events a frame becomes (none for #sync, #info and errors). */
export function eventsOf(frame: Uint8Array, clock: CursorClock): Entry[] {
  const message = eventMessageOf(frame);
  return message ? buildEvents(message, clock).entries : [];
}
