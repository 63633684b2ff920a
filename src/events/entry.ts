/**
 * Package events turns upstream messages into Jetstream v1 events: the JSON model and the
 * cursor clock.
 *
 * How it works: buildEvents takes a verified message from upstream/ and writes each event's
 * JSON once, as a string assembled in Jetstream's key order (the envelope here, the record by
 * record-json.ts's CBOR-to-JSON transcoder), then into one Buffer. Each event takes the next
 * time_us from the CursorClock (clock.ts): max(now_µs, last + 1), so cursors are unique and
 * strictly increasing across the ops of a commit, across messages and — because the store
 * hands the clock its last issued value at start — across restarts and wall-clock steps.
 *
 * Why bytes, once: everything downstream (the LMDB value, the hot log, every subscriber's
 * socket, the one zstd compression) shares this Buffer; nothing re-serializes an event.
 * A record that breaks the atproto data model is dropped here (bad_record) before it takes a
 * time_us, and the rest of its commit carries on.
 */
import type { OpDrop, RecordOp, UpstreamMessage } from '../upstream/messages.ts';
import type { CursorClock } from './clock.ts';
import { recordToJson } from './record-json.ts';

export type EventKind = 'commit' | 'identity' | 'account';

/**
 * One event as every later stage sees it: the metadata a filter needs, and the event's JSON
 * bytes, serialized once and shared by the store, the hot log and every subscriber.
 */
export interface Entry {
  timeUs: number;
  did: string;
  kind: EventKind;
  /** The record's collection for commit events; null for identity and account events. */
  collection: string | null;
  json: Buffer;
  /** The zstd frame of `json`, made on first use by the compressing server and then shared. */
  zstd?: Uint8Array;
}

type EventMessage = Extract<UpstreamMessage, { type: 'commit' | 'identity' | 'account' }>;

export interface BuiltEvents {
  entries: Entry[];
  drops: OpDrop[];
}

/**
 * Turns an upstream message into Jetstream v1 events, one per commit op, each taking the next
 * cursor from `clock`. Keys are written in Jetstream's order. DIDs, NSIDs, record keys and CIDs
 * were syntax-checked upstream and contain nothing JSON must escape, so they are quoted directly.
 */
export function buildEvents(message: EventMessage, clock: CursorClock): BuiltEvents {
  switch (message.type) {
    case 'commit':
      return buildCommitEvents(message, clock);
    case 'identity': {
      const timeUs = clock.next();
      const handle = message.handle === undefined ? '' : `"handle":${JSON.stringify(message.handle)},`;
      const json = `{"did":"${message.did}","time_us":${timeUs},"kind":"identity","identity":{"did":"${message.did}",${handle}"seq":${message.seq},"time":${JSON.stringify(message.time)}}}`;
      return { entries: [entry(timeUs, message.did, 'identity', null, json)], drops: [] };
    }
    case 'account': {
      const timeUs = clock.next();
      // Status before time: Jetstream marshals indigo's struct, whose fields are in lexicon (alphabetical) order.
      const status = message.status === undefined ? '' : `"status":${JSON.stringify(message.status)},`;
      const json = `{"did":"${message.did}","time_us":${timeUs},"kind":"account","account":{"active":${message.active},"did":"${message.did}","seq":${message.seq},${status}"time":${JSON.stringify(message.time)}}}`;
      return { entries: [entry(timeUs, message.did, 'account', null, json)], drops: [] };
    }
  }
}

function buildCommitEvents(message: Extract<EventMessage, { type: 'commit' }>, clock: CursorClock): BuiltEvents {
  const entries: Entry[] = [];
  const drops = [...message.drops];
  const rev = JSON.stringify(message.rev);
  for (const op of message.ops) {
    let recordPart: string;
    try {
      recordPart = recordFields(op);
    } catch (err) {
      drops.push({ reason: 'bad_record', path: `${op.collection}/${op.rkey}`, detail: (err as Error).message });
      continue;
    }
    const timeUs = clock.next();
    const json = `{"did":"${message.repo}","time_us":${timeUs},"kind":"commit","commit":{"rev":${rev},"operation":"${op.action}","collection":"${op.collection}","rkey":"${op.rkey}"${recordPart}}}`;
    entries.push(entry(timeUs, message.repo, 'commit', op.collection, json));
  }
  return { entries, drops };
}

function recordFields(op: RecordOp): string {
  if (op.record === null) return '';
  return `,"record":${recordToJson(op.record)},"cid":"${op.cid}"`;
}

function entry(timeUs: number, did: string, kind: EventKind, collection: string | null, json: string): Entry {
  return { timeUs, did, kind, collection, json: Buffer.from(json) };
}
